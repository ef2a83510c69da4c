/* libvgsink's recording path without a collector: item memory carved from
 * per-thread chunks and freed on another thread, and the sharded queue's
 * counts, bound and config checks. */
#include <pthread.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sink_int.h"
#include "sinkrow.h"
#include "unit.h"

#define ITEMS_PER_THREAD 20000

struct alloc_run {
	struct sink_item **items;
	size_t *sizes;
	int n;
	int bad;
};

static size_t item_size(int i)
{
	/* Mostly row-sized, now and then past the big-item threshold (8 KiB). */
	return i % 997 == 0 ? 20000 : sizeof(struct sink_item) + 40 + (size_t)(i * 37 % 600);
}

static void *alloc_thread(void *arg)
{
	struct alloc_run *r = arg;

	for (int i = 0; i < r->n; i++) {
		r->sizes[i] = item_size(i);
		r->items[i] = sink_item_new(r->sizes[i]);
		if (!r->items[i]) {
			r->bad++;
			continue;
		}
		memset(r->items[i]->strings, (unsigned char)i,
		       r->sizes[i] - sizeof(struct sink_item));
	}
	return NULL;
}

static void *free_thread(void *arg)
{
	struct alloc_run *r = arg;

	for (int i = 0; i < r->n; i++) {
		size_t body = r->sizes[i] - sizeof(struct sink_item);
		unsigned char want = (unsigned char)i;

		/* Another item written over this one would show here. */
		for (size_t k = 0; k < body; k++) {
			if ((unsigned char)r->items[i]->strings[k] != want) {
				r->bad++;
				break;
			}
		}
		sink_item_free(r->items[i]);
	}
	return NULL;
}

UNIT_TEST(sink_items_never_overlap_and_free_on_another_thread)
{
	struct alloc_run runs[3];
	pthread_t t[3];

	for (int round = 0; round < 2; round++) { /* round 2 reuses recycled chunks */
		for (int k = 0; k < 3; k++) {
			runs[k] = (struct alloc_run){ calloc(ITEMS_PER_THREAD, sizeof(void *)),
						      calloc(ITEMS_PER_THREAD, sizeof(size_t)),
						      ITEMS_PER_THREAD, 0 };
			pthread_create(&t[k], NULL, alloc_thread, &runs[k]);
		}
		for (int k = 0; k < 3; k++)
			pthread_join(t[k], NULL);
		for (int k = 0; k < 3; k++)
			pthread_create(&t[k], NULL, free_thread, &runs[k]);
		for (int k = 0; k < 3; k++) {
			pthread_join(t[k], NULL);
			CHECK_MSG(runs[k].bad == 0, "round %d thread %d: %d items bad", round, k,
				  runs[k].bad);
			free(runs[k].items);
			free(runs[k].sizes);
		}
	}
}

UNIT_TEST(sink_items_free_list_mixes_chunks_and_big_items)
{
	struct sink_item *head = NULL, **tail = &head;

	for (int i = 0; i < 5000; i++) {
		struct sink_item *it = sink_item_new(item_size(i));

		CHECK(it != NULL);
		if (!it)
			return;
		it->next = NULL;
		*tail = it;
		tail = &it->next;
	}
	sink_items_free_list(head); /* ASan reports a leak or a double free here */
}

static vgsink *open_dead(size_t queue_max, int batch_rows, int shards, char *err, size_t errlen)
{
	vgsink_config cfg;

	vgsink_config_init(&cfg);
	cfg.url = "http://127.0.0.1:9"; /* nothing listens: rows stay queued */
	cfg.api_key = "k";
	cfg.queue_max_rows = queue_max;
	cfg.batch_rows = batch_rows;
	cfg.flush_interval_ms = 3600000;
	cfg.queue_shards = shards;
	return vgsink_open(&cfg, err, errlen);
}

/* A dead sink whose sender stands still (parked in a callback) until
 * open_still_close: it takes no batch, so the counts are exact. */
static vgsink *open_still(size_t queue_max, int batch_rows, int shards, char *err, size_t errlen)
{
	vgsink *s = open_dead(queue_max, batch_rows, shards, err, errlen);

	if (s) {
		sink_sender_park_begin(s);
		sink_sender_park_wait(s);
	}
	return s;
}

static int open_still_close(vgsink *s)
{
	sink_sender_park_end(s);
	return vgsink_close(s, 0);
}

struct record_run {
	vgsink *s;
	int n, failed;
};

static void *record_thread(void *arg)
{
	struct record_run *r = arg;
	vgsink_row row = sinkrow_minimal();

	for (int i = 0; i < r->n; i++)
		r->failed += vgsink_record(r->s, &row) != 0;
	return NULL;
}

UNIT_TEST(sink_counts_rows_still_in_shards)
{
	char err[512];
	vgsink *s = open_dead(1000000, 500, 16, err, sizeof(err));
	struct record_run runs[4];
	pthread_t t[4];
	vgsink_stats st;

	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	/* 4 x 30 rows: under the 64-row handoff, so every row waits in a shard. */
	for (int k = 0; k < 4; k++) {
		runs[k] = (struct record_run){ s, 30, 0 };
		pthread_create(&t[k], NULL, record_thread, &runs[k]);
	}
	for (int k = 0; k < 4; k++) {
		pthread_join(t[k], NULL);
		CHECK(runs[k].failed == 0);
	}
	vgsink_stats_get(s, &st);
	CHECK_MSG(st.recorded == 120 && st.queued == 120 && st.dropped == 0,
		  "recorded %llu queued %llu dropped %llu", (unsigned long long)st.recorded,
		  (unsigned long long)st.queued, (unsigned long long)st.dropped);
	/* No spool: closing counts every unsent row as dropped, none forgotten. */
	CHECK(vgsink_close(s, 0) != 0);
}

UNIT_TEST(sink_drops_nothing_while_every_row_held_fits_the_bound)
{
	char err[512];
	vgsink *s = open_still(4096, 100, 16, err, sizeof(err));
	vgsink_row row = sinkrow_minimal();
	struct record_run runs[8];
	pthread_t t[8];
	vgsink_stats st;

	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	/* A shard hands on 64 rows at a time and may keep 63, so the central
	 * queue's own share is 4096 - 16 x 63. First 8 threads leave 40 rows
	 * each in their shards; then this thread records the rest of 4096. All
	 * of them fit queue_max_rows, so none may go. The sender is parked, so
	 * every row is in the queue. */
	for (int k = 0; k < 8; k++) {
		runs[k] = (struct record_run){ s, 40, 0 };
		pthread_create(&t[k], NULL, record_thread, &runs[k]);
	}
	for (int k = 0; k < 8; k++) {
		pthread_join(t[k], NULL);
		CHECK(runs[k].failed == 0);
	}
	for (int i = 0; i < 4096 - 320; i++)
		CHECK(vgsink_record(s, &row) == 0);
	vgsink_stats_get(s, &st);
	CHECK_MSG(st.recorded == 4096 && st.dropped == 0 && st.queued == 4096,
		  "recorded %llu queued %llu dropped %llu", (unsigned long long)st.recorded,
		  (unsigned long long)st.queued, (unsigned long long)st.dropped);
	/* 1000 more: now the oldest go, exactly as many as are over the bound,
	 * the 320 rows that were left in shards counted too. */
	for (int i = 0; i < 1000; i++)
		CHECK(vgsink_record(s, &row) == 0);
	vgsink_stats_get(s, &st);
	CHECK_MSG(st.recorded == 5096 && st.queued == 4096 && st.dropped == 1000,
		  "recorded %llu queued %llu dropped %llu", (unsigned long long)st.recorded,
		  (unsigned long long)st.queued, (unsigned long long)st.dropped);
	open_still_close(s);
}

UNIT_TEST(sink_small_queue_accounts_for_every_row_it_drops)
{
	char err[512];
	vgsink *s = open_still(40, 40, 16, err, sizeof(err));
	vgsink_row row = sinkrow_minimal();
	vgsink_stats st;

	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	/* 40 rows over 16 shards: the handoff is 1 row, so the bound is exact.
	 * The sender is parked: the 40 newest rows stay, the 60 oldest go. */
	for (int i = 0; i < 100; i++)
		CHECK(vgsink_record(s, &row) == 0);
	vgsink_stats_get(s, &st);
	CHECK_MSG(st.recorded == 100 && st.queued == 40 && st.dropped == 60,
		  "recorded %llu queued %llu dropped %llu", (unsigned long long)st.recorded,
		  (unsigned long long)st.queued, (unsigned long long)st.dropped);
	/* No spool: closing with rows unsent reports it. */
	CHECK(open_still_close(s) != 0);
}

/* A dead sink with a spool in a fresh directory (dir: a mkdtemp template)
 * whose sender is parked: nothing reaches the disk until it is released. */
static vgsink *open_still_spool(char *dir, size_t spool_max, char *err, size_t errlen)
{
	vgsink_config cfg;
	vgsink *s;

	if (!mkdtemp(dir)) {
		snprintf(err, errlen, "mkdtemp failed");
		return NULL;
	}
	vgsink_config_init(&cfg);
	cfg.url = "http://127.0.0.1:9";
	cfg.api_key = "k";
	cfg.queue_max_rows = 1000;
	cfg.batch_rows = 100;
	cfg.flush_interval_ms = 3600000;
	cfg.retry_initial_ms = 10;
	cfg.retry_max_ms = 20;
	cfg.spool_dir = dir;
	cfg.spool_max_bytes = spool_max;
	s = vgsink_open(&cfg, err, errlen);
	if (s) {
		sink_sender_park_begin(s);
		sink_sender_park_wait(s);
	}
	return s;
}

static void rm_dir(int *unit_failed_, const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

static bool stats_add_up(const vgsink_stats *st)
{
	return st->recorded ==
	       st->sent + st->dropped + st->rejected + st->queued + st->spooled_rows;
}

UNIT_TEST(sink_with_spool_room_keeps_rows_past_the_bound_while_the_sender_is_slow)
{
	char err[512], dir[] = "/tmp/vgsink-unit-XXXXXX";
	vgsink *s = open_still_spool(dir, (size_t)64 << 20, err, sizeof(err));
	vgsink_row row = sinkrow_minimal();
	vgsink_stats st;

	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	/* The sender stands still as one stalled in an fsync would: 5 x the
	 * bound arrives meanwhile. The spool has room for all of it, so no row
	 * may go. */
	for (int i = 0; i < 5000; i++)
		CHECK(vgsink_record(s, &row) == 0);
	vgsink_stats_get(s, &st);
	CHECK_MSG(st.recorded == 5000 && st.dropped == 0 && st.queued == 5000,
		  "recorded %llu queued %llu dropped %llu", (unsigned long long)st.recorded,
		  (unsigned long long)st.queued, (unsigned long long)st.dropped);
	/* Released, it moves the backlog to disk (the collector is down). */
	sink_sender_park_end(s);
	for (int waited = 0; waited < 20000; waited += 10) {
		vgsink_stats_get(s, &st);
		if (st.spooled_rows >= 4900)
			break;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	CHECK_MSG(st.spooled_rows >= 4900 && st.dropped == 0 && stats_add_up(&st),
		  "recorded %llu queued %llu spooled_rows %llu dropped %llu",
		  (unsigned long long)st.recorded, (unsigned long long)st.queued,
		  (unsigned long long)st.spooled_rows, (unsigned long long)st.dropped);
	CHECK(vgsink_close(s, 0) != 0); /* not delivered: the rows wait on disk */
	rm_dir(unit_failed_, dir);
}

UNIT_TEST(sink_with_a_full_spool_drops_past_twice_the_bound)
{
	char err[512], dir[] = "/tmp/vgsink-unit-XXXXXX";
	vgsink *s = open_still_spool(dir, 4096, err, sizeof(err));
	vgsink_row row = sinkrow_minimal();
	vgsink_stats st;

	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	/* 4 KiB of spool takes none of these rows' JSON: memory keeps its
	 * bound, twice queue_max_rows with a spool, and the oldest go. */
	for (int i = 0; i < 5000; i++)
		CHECK(vgsink_record(s, &row) == 0);
	vgsink_stats_get(s, &st);
	CHECK_MSG(st.recorded == 5000 && st.queued == 2000 && st.dropped == 3000,
		  "recorded %llu queued %llu dropped %llu", (unsigned long long)st.recorded,
		  (unsigned long long)st.queued, (unsigned long long)st.dropped);
	sink_sender_park_end(s);
	(void)vgsink_close(s, 0);
	rm_dir(unit_failed_, dir);
}

UNIT_TEST(sink_rejects_queue_shards_out_of_range)
{
	char err[512] = "";

	CHECK(open_dead(1000, 10, 0, err, sizeof(err)) == NULL);
	CHECK_MSG(strstr(err, "queue_shards") != NULL, "%s", err);
	err[0] = '\0';
	CHECK(open_dead(1000, 10, 257, err, sizeof(err)) == NULL);
	CHECK_MSG(strstr(err, "queue_shards") != NULL, "%s", err);
}
