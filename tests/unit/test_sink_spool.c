/* libvgsink's spool: whether a batch fits is decided before anything is
 * removed; a pending file is never removed to make room; rejected/ shares
 * spool_max_bytes and gives way oldest first, counting the rows it drops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* Writes a 10-row batch of 1500 bytes, pending or rejected. */
static enum spool_result spool_test_write(struct spool *sp, bool rejected)
{
	struct sink_batch *b = spool_test_batch(10, 1500);
	char err[256] = "";
	enum spool_result r;

	if (rejected)
		r = spool_write_rejected(sp, b, err, sizeof(err)) ? SPOOL_WRITTEN : SPOOL_FULL;
	else
		r = spool_write(sp, b, err, sizeof(err));
	sink_batch_free(b);
	return r;
}

static struct spool *spool_test_open(char *dir, size_t max)
{
	char err[256] = "";
	struct spool *sp = spool_open(dir, max, err, sizeof(err));

	if (!sp)
		fprintf(stderr, "    spool_open: %s\n", err);
	return sp;
}

static bool spool_test_exists(const char *dir, const char *sub, uint64_t seq)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s%016llx-%08x.vgb", dir, sub, (unsigned long long)seq,
		 10);
	return stat(path, &st) == 0;
}

static void spool_test_rmdir(int *unit_failed_, const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

UNIT_TEST(spool_full_refuses_a_batch_and_removes_no_pending_file)
{
	char dir[] = "/tmp/vgsink-unit-spool-XXXXXX";
	struct spool *sp;

	CHECK(mkdtemp(dir) != NULL);
	sp = spool_test_open(dir, 4096);
	CHECK(sp != NULL);
	if (!sp)
		return;
	CHECK(spool_test_write(sp, false) == SPOOL_WRITTEN);
	CHECK(spool_test_write(sp, false) == SPOOL_WRITTEN);
	CHECK(spool_test_write(sp, false) == SPOOL_FULL);
	CHECK_MSG(sp->n == 2 && sp->rows == 20 && sp->bytes == 3000, "n %d rows %llu bytes %zu",
		  sp->n, (unsigned long long)sp->rows, sp->bytes);
	CHECK(spool_test_exists(dir, "", 1) && spool_test_exists(dir, "", 2));
	/* A batch larger than the whole spool changes nothing either. */
	struct sink_batch *big = spool_test_batch(10, 5000);
	char err[256] = "";
	CHECK(spool_write(sp, big, err, sizeof(err)) == SPOOL_FULL);
	CHECK_MSG(strstr(err, "spool_max_bytes") != NULL, "%s", err);
	CHECK(sp->n == 2 && spool_test_exists(dir, "", 1));
	sink_batch_free(big);
	spool_close(sp);
	spool_test_rmdir(unit_failed_, dir);
}

UNIT_TEST(spool_pending_batch_makes_rejected_files_go_oldest_first)
{
	char dir[] = "/tmp/vgsink-unit-spool-XXXXXX";
	struct spool *sp;

	CHECK(mkdtemp(dir) != NULL);
	sp = spool_test_open(dir, 4096);
	CHECK(sp != NULL);
	if (!sp)
		return;
	CHECK(spool_test_write(sp, true) == SPOOL_WRITTEN); /* seq 1 */
	CHECK(spool_test_write(sp, true) == SPOOL_WRITTEN); /* seq 2 */
	CHECK(sp->rej_n == 2 && sp->rej_bytes == 3000 && sp->rej_discarded == 0);
	/* 3000 + 1500 > 4096: the oldest rejected file (already counted as
	 * rejected) goes, and is counted as removed. */
	CHECK(spool_test_write(sp, false) == SPOOL_WRITTEN);
	CHECK_MSG(sp->rej_n == 1 && sp->rej_bytes == 1500 && sp->rej_discarded == 10 && sp->n == 1,
		  "rej_n %d rej_bytes %zu discarded %llu n %d", sp->rej_n, sp->rej_bytes,
		  (unsigned long long)sp->rej_discarded, sp->n);
	CHECK(!spool_test_exists(dir, "rejected/", 1) && spool_test_exists(dir, "rejected/", 2));
	/* Pending 1500, rejected 1500: a new rejected batch pushes out the old one
	 * and never a pending file. */
	CHECK(spool_test_write(sp, true) == SPOOL_WRITTEN);
	CHECK(sp->n == 1 && sp->rej_n == 1 && sp->rej_discarded == 20);
	CHECK(sp->bytes + sp->rej_bytes <= 4096);
	spool_close(sp);
	spool_test_rmdir(unit_failed_, dir);
}

UNIT_TEST(spool_rejected_batch_that_cannot_fit_beside_pending_is_not_kept)
{
	char dir[] = "/tmp/vgsink-unit-spool-XXXXXX";
	struct spool *sp;

	CHECK(mkdtemp(dir) != NULL);
	sp = spool_test_open(dir, 4096);
	CHECK(sp != NULL);
	if (!sp)
		return;
	CHECK(spool_test_write(sp, false) == SPOOL_WRITTEN);
	CHECK(spool_test_write(sp, false) == SPOOL_WRITTEN);
	CHECK(spool_test_write(sp, true) == SPOOL_FULL);
	CHECK(sp->n == 2 && sp->rej_n == 0 && sp->rej_discarded == 10);
	spool_close(sp);
	spool_test_rmdir(unit_failed_, dir);
}

UNIT_TEST(spool_open_counts_rejected_dir_and_trims_it_to_a_smaller_cap)
{
	char dir[] = "/tmp/vgsink-unit-spool-XXXXXX";
	struct spool *sp;

	CHECK(mkdtemp(dir) != NULL);
	sp = spool_test_open(dir, 1 << 20);
	CHECK(sp != NULL);
	if (!sp)
		return;
	for (int i = 0; i < 4; i++)
		CHECK(spool_test_write(sp, true) == SPOOL_WRITTEN);
	CHECK(spool_test_write(sp, false) == SPOOL_WRITTEN);
	spool_close(sp);
	/* Reopened under 4096: pending 1500 stays, rejected keeps its newest file. */
	sp = spool_test_open(dir, 4096);
	CHECK(sp != NULL);
	if (!sp)
		return;
	CHECK_MSG(sp->n == 1 && sp->rows == 10 && sp->rej_n == 1 && sp->rej_discarded == 30 &&
			  sp->bytes + sp->rej_bytes <= 4096,
		  "n %d rej_n %d discarded %llu", sp->n, sp->rej_n,
		  (unsigned long long)sp->rej_discarded);
	CHECK(spool_test_exists(dir, "rejected/", 4) && !spool_test_exists(dir, "rejected/", 3));
	spool_close(sp);
	spool_test_rmdir(unit_failed_, dir);
}
