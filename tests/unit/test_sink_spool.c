/* libvgsink's spool: making room drops the oldest files and counts their
 * rows, except the file being sent, whose rows are still in memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sink_int.h"
#include "unit.h"

static struct sink_batch *spool_test_batch(int nrows, size_t bytes)
{
	struct sink_batch *b = calloc(1, sizeof(*b));

	buf_init(&b->body, 0);
	for (size_t i = 0; i < bytes; i++)
		(void)buf_putc(&b->body, 'x');
	b->nrows = nrows;
	b->min_seq = 1;
	return b;
}

static uint64_t spool_test_write(struct spool *sp, uint64_t busy, uint64_t *dropped, bool *evicted,
				 int *failed)
{
	struct sink_batch *b = spool_test_batch(10, 1500);
	char err[256] = "";
	uint64_t seq = 0;

	if (!spool_write(sp, b, busy, dropped, evicted, err, sizeof(err)))
		*failed = 1;
	seq = b->file_seq;
	sink_batch_free(b);
	return seq;
}

UNIT_TEST(spool_full_keeps_the_rows_of_the_file_being_sent)
{
	char dir[] = "/tmp/vgsink-unit-spool-XXXXXX", err[256] = "", cmd[128];
	struct spool *sp;
	uint64_t first, dropped = 0;
	bool evicted = false;
	int failed = 0;

	CHECK(mkdtemp(dir) != NULL);
	sp = spool_open(dir, 4096, err, sizeof(err));
	CHECK_MSG(sp != NULL, "%s", err);
	if (!sp)
		return;
	first = spool_test_write(sp, 0, &dropped, &evicted, &failed);
	spool_test_write(sp, 0, &dropped, &evicted, &failed);
	CHECK(!failed && sp->n == 2 && dropped == 0 && !evicted);

	/* The oldest file is the one in flight: it goes, but nothing is dropped. */
	spool_test_write(sp, first, &dropped, &evicted, &failed);
	CHECK_MSG(!failed && sp->n == 2 && dropped == 0 && evicted, "n %d dropped %llu evicted %d",
		  sp->n, (unsigned long long)dropped, evicted);
	CHECK(!spool_has(sp, first));

	/* The next oldest is an ordinary pending file: its 10 rows are dropped. */
	spool_test_write(sp, first, &dropped, &evicted, &failed);
	CHECK_MSG(!failed && sp->n == 2 && dropped == 10 && !evicted,
		  "n %d dropped %llu evicted %d", sp->n, (unsigned long long)dropped, evicted);
	spool_close(sp);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}
