/* libvgsink's accounting: recorded = sent + dropped + rejected + queued +
 * spooled_rows in every snapshot, also while the spool cannot take a batch
 * (its dir gone, or too small), and a row kept in memory is never dropped. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinkrow.h"
#include "unit.h"

static bool stats_add_up(const vgsink_stats *st)
{
	return st->recorded ==
	       st->sent + st->dropped + st->rejected + st->queued + st->spooled_rows;
}

/* Records n rows on s, sampling the stats after each and many times after;
 * returns how many snapshots broke the identity or showed a drop. */
static int stats_watch(vgsink *s, const vgsink_row *row, int n, vgsink_stats *last)
{
	int bad = 0;

	for (int i = 0; i < n + 3000; i++) {
		if (i < n && vgsink_record(s, row) != 0)
			bad++;
		vgsink_stats_get(s, last);
		bad += !stats_add_up(last) || last->dropped != 0;
		if (i >= n)
			usleep(100);
	}
	return bad;
}

static void stats_rmdir(int *unit_failed_, const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

UNIT_TEST(sink_stats_add_up_at_every_moment_while_the_spool_dir_is_gone)
{
	char dir[] = "/tmp/vgsink-unit-stats-XXXXXX", err[512];
	vgsink_row row = sinkrow_minimal();
	vgsink_config cfg;
	vgsink_stats st;
	vgsink *s;
	int bad;

	CHECK(mkdtemp(dir) != NULL);
	sinkrow_refused_config(&cfg);
	cfg.spool_dir = dir;
	s = vgsink_open(&cfg, err, sizeof(err));
	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	stats_rmdir(unit_failed_, dir); /* every spool write now fails */
	bad = stats_watch(s, &row, 50, &st);
	CHECK_MSG(bad == 0, "%d snapshots did not add up or showed drops", bad);
	CHECK_MSG(st.recorded == 50 && st.queued == 50 && st.dropped == 0 && st.spooled_rows == 0 &&
			  st.retries > 0,
		  "recorded %llu queued %llu dropped %llu spooled_rows %llu retries %llu",
		  (unsigned long long)st.recorded, (unsigned long long)st.queued,
		  (unsigned long long)st.dropped, (unsigned long long)st.spooled_rows,
		  (unsigned long long)st.retries);
	CHECK(vgsink_close(s, 0) != 0); /* nowhere to put them: lost at close, and said so */
}

UNIT_TEST(sink_stats_add_up_while_batches_wait_in_memory_for_spool_room)
{
	char dir[] = "/tmp/vgsink-unit-stats-XXXXXX", err[512], pad[3001];
	vgsink_row row = sinkrow_minimal();
	vgsink_config cfg;
	vgsink_stats st;
	unsigned x = 12345;
	vgsink *s;
	int bad;

	/* Random text barely compresses: each row's batch is about 2.3 KB, so a
	 * 4096-byte spool takes one and the rest wait in memory. */
	for (int i = 0; i < 3000; i++) {
		x = x * 1103515245u + 12345u;
		pad[i] =
			"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"[x >> 26];
	}
	pad[3000] = '\0';
	row.error_message = pad;
	CHECK(mkdtemp(dir) != NULL);
	sinkrow_refused_config(&cfg);
	cfg.spool_dir = dir;
	cfg.spool_max_bytes = 4096;
	s = vgsink_open(&cfg, err, sizeof(err));
	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	bad = stats_watch(s, &row, 20, &st);
	CHECK_MSG(bad == 0, "%d snapshots did not add up or showed drops", bad);
	CHECK_MSG(st.recorded == 20 && st.spooled_rows >= 1 && st.queued + st.spooled_rows == 20 &&
			  st.spool_bytes <= 4096,
		  "recorded %llu queued %llu spooled_rows %llu spool_bytes %llu",
		  (unsigned long long)st.recorded, (unsigned long long)st.queued,
		  (unsigned long long)st.spooled_rows, (unsigned long long)st.spool_bytes);
	vgsink_close(s, 0);
	stats_rmdir(unit_failed_, dir);
}
