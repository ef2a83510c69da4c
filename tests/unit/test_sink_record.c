/* vgsink_record refuses a bad row at once, with a message naming the field,
 * and queues nothing for it; good rows next to it are kept. The message is
 * the recording thread's own. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "sink_int.h"
#include "sinkrow.h"
#include "unit.h"

UNIT_TEST(sink_record_refuses_bad_rows_with_the_field_named)
{
	static const struct {
		const char *name, *modality, *status, *tenant, *metadata;
		double cost;
		const char *expect;
	} cases[] = {
		{ "unknown modality", "video", NULL, NULL, NULL, 0, "modality" },
		{ "unknown status", "llm", "maybe", NULL, NULL, 0, "status" },
		{ "tenant with a space", "llm", NULL, "acme corp", NULL, 0, "tenant_id" },
		{ "negative cost", "llm", NULL, NULL, NULL, -1, "cost_usd" },
		{ "metadata not an object", "llm", NULL, NULL, "[1]", 0, "metadata_json" },
		{ "metadata holding a NUL", "llm", NULL, NULL, "{\"a\":\"x\\u0000\"}", 0,
		  "\\u0000" },
		{ "metadata holding a raw control character", "llm", NULL, NULL,
		  "{\"a\":\"x\x01y\"}", 0, "metadata_json" },
		{ "metadata holding a raw tab", "llm", NULL, NULL, "{\"a\":\"x\ty\"}", 0,
		  "metadata_json" },
	};
	vgsink_stats st;
	char err[512];
	vgsink *s;

	s = sinkrow_open_unsent(err, sizeof(err));
	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		vgsink_row r = sinkrow_minimal();

		r.modality = cases[i].modality;
		r.status = cases[i].status;
		r.tenant_id = cases[i].tenant;
		r.metadata_json = cases[i].metadata;
		if (cases[i].cost < 0)
			r.cost_usd = cases[i].cost;
		CHECK_MSG(vgsink_record(s, &r) == -1, "%s: accepted", cases[i].name);
		CHECK_MSG(strstr(vgsink_errstr(s), cases[i].expect) != NULL,
			  "%s: error \"%s\" lacks \"%s\"", cases[i].name, vgsink_errstr(s),
			  cases[i].expect);
	}
	/* The text C:\u0000 (an escaped backslash) holds no NUL. */
	vgsink_row ok = sinkrow_minimal();
	ok.metadata_json = "{\"path\":\"C:\\\\u0000\"}";
	CHECK_MSG(vgsink_record(s, &ok) == 0, "%s", vgsink_errstr(s));
	/* Repeated keys in metadata are the client's data: the collector stores
	 * them as jsonb does (the last wins), so the sink takes them too. */
	ok.metadata_json = "{\"tenant\":\"a\",\"tenant\":\"b\"}";
	CHECK_MSG(vgsink_record(s, &ok) == 0, "%s", vgsink_errstr(s));
	vgsink_stats_get(s, &st);
	CHECK_MSG(st.recorded == 2 && st.queued == 2, "recorded %llu queued %llu",
		  (unsigned long long)st.recorded, (unsigned long long)st.queued);
	vgsink_close(s, 0);
}

struct errstr_run {
	vgsink *s;
	pthread_barrier_t *both_failed;
	const char *modality, *status, *expect;
	int rc;
	char seen[256];
};

static void *errstr_thread(void *arg)
{
	struct errstr_run *r = arg;
	vgsink_row row = sinkrow_minimal();

	row.modality = r->modality;
	row.status = r->status;
	r->rc = vgsink_record(r->s, &row);
	/* Both threads have failed before either reads its message. */
	pthread_barrier_wait(r->both_failed);
	snprintf(r->seen, sizeof(r->seen), "%s", vgsink_errstr(r->s));
	return NULL;
}

UNIT_TEST(sink_errstr_is_the_calling_threads_own)
{
	pthread_barrier_t both_failed;
	struct errstr_run runs[2] = {
		{ .modality = "video", .expect = "modality \"video\"" },
		{ .modality = "llm", .status = "maybe", .expect = "status \"maybe\"" },
	};
	vgsink_config cfg;
	pthread_t t[2];
	char err[512];
	vgsink *s;

	vgsink_config_init(&cfg);
	cfg.url = "http://127.0.0.1:9";
	cfg.api_key = "k";
	s = vgsink_open(&cfg, err, sizeof(err));
	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	CHECK(vgsink_record(s, (const vgsink_row *)NULL) == -1);
	pthread_barrier_init(&both_failed, NULL, 2);
	for (int k = 0; k < 2; k++) {
		runs[k].s = s;
		runs[k].both_failed = &both_failed;
		pthread_create(&t[k], NULL, errstr_thread, &runs[k]);
	}
	for (int k = 0; k < 2; k++) {
		pthread_join(t[k], NULL);
		CHECK(runs[k].rc == -1);
		CHECK_MSG(strncmp(runs[k].seen, runs[k].expect, strlen(runs[k].expect)) == 0,
			  "thread %d: \"%s\", expected it to start \"%s\"", k, runs[k].seen,
			  runs[k].expect);
	}
	pthread_barrier_destroy(&both_failed);
	/* This thread's own failure is still its message. */
	CHECK_MSG(strncmp(vgsink_errstr(s), "vgsink_record: ", 15) == 0, "\"%s\"",
		  vgsink_errstr(s));
	vgsink_close(s, 0);
}

/* A row recorded without an id gets a fresh random version 4 UUID, written
 * the canonical way when the row is read back for sending. */
UNIT_TEST(sink_record_generates_distinct_v4_uuids)
{
	char err[512], ids[64][37];
	struct sink_item *it;
	vgsink *s;
	int n = 0;

	s = sinkrow_open_unsent(err, sizeof(err));
	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	for (int i = 0; i < 64; i++) {
		vgsink_row r = sinkrow_minimal();

		r.id = NULL;
		CHECK_MSG(vgsink_record(s, &r) == 0, "%s", vgsink_errstr(s));
	}
	pthread_mutex_lock(&s->lock);
	sink_queue_collect_locked(s);
	for (it = s->head; it && n < 64; it = it->next, n++) {
		struct row back;
		const char *id;

		sink_item_row(it, &back, ids[n]);
		id = back.id;
		CHECK_MSG(strlen(id) == 36 && id[8] == '-' && id[13] == '-' && id[14] == '4' &&
				  id[18] == '-' && strchr("89ab", id[19]) && id[23] == '-' &&
				  strspn(id, "0123456789abcdef-") == 36,
			  "not a canonical v4 UUID: %s", id);
		for (int j = 0; j < n; j++)
			CHECK_MSG(strcmp(ids[j], id) != 0, "id %s made twice", id);
		memmove(ids[n], id, 37);
	}
	pthread_mutex_unlock(&s->lock);
	CHECK_MSG(n == 64, "%d rows queued, not 64", n);
	vgsink_close(s, 0);
}

UNIT_TEST(sink_row_offsets_follow_the_row_table_field_by_field)
{
	for (int i = 0; i < ROW_NFIELDS; i++)
		CHECK_MSG(strcmp(sink_row_fields[i].name, row_fields[i].name) == 0,
			  "entry %d: sink/sink_row.c has %s where row_fields has %s", i,
			  sink_row_fields[i].name, row_fields[i].name);
}

/* Past queue_max_rows, vgsink_record drops the oldest (counted), while
 * vgsink_try_record takes nothing and says VGSINK_FULL, and vgsink_wait_room
 * gives up at its timeout while the collector is away. */
UNIT_TEST(sink_try_record_says_full_where_record_would_drop)
{
	vgsink_config cfg;
	vgsink_stats st;
	char err[256];
	vgsink *s;
	int rc = 0;

	vgsink_config_init(&cfg);
	cfg.url = "http://127.0.0.1:9";
	cfg.api_key = "k";
	cfg.flush_interval_ms = 3600000;
	cfg.batch_rows = 10;
	cfg.queue_max_rows = 40;
	s = vgsink_open(&cfg, err, sizeof(err));
	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	for (int i = 0; i < 40 && rc == 0; i++) {
		vgsink_row r = sinkrow_minimal();

		rc = vgsink_try_record(s, &r);
	}
	CHECK_MSG(rc == 0, "the first 40 rows fit: %d", rc);
	for (int i = 0; i < 5; i++) {
		vgsink_row r = sinkrow_minimal();

		CHECK(vgsink_try_record(s, &r) == VGSINK_FULL);
	}
	CHECK(vgsink_wait_room(s, 50) == -1);
	CHECK(strstr(vgsink_errstr(s), "no room after 50 ms") != NULL);
	vgsink_stats_get(s, &st);
	CHECK_MSG(st.recorded == 40 && st.dropped == 0, "recorded %llu dropped %llu",
		  (unsigned long long)st.recorded, (unsigned long long)st.dropped);
	{
		vgsink_row r = sinkrow_minimal();

		CHECK(vgsink_record(s, &r) == 0);
	}
	vgsink_stats_get(s, &st);
	CHECK_MSG(st.recorded == 41 && st.dropped == 1, "recorded %llu dropped %llu",
		  (unsigned long long)st.recorded, (unsigned long long)st.dropped);
	vgsink_close(s, 0);
}
