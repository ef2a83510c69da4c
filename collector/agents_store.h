/* The roster's SQL: the heartbeat upsert, the listing GET /v1/agents and
 * `vgcollector agents` share, the /metrics gauges, and forgetting workers
 * long offline. Blocking libpq: worker threads and the CLI only. */
#ifndef VGC_AGENTS_STORE_H
#define VGC_AGENTS_STORE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct agents_beat;

/* Growth is measured from the stored counter, or from 0 when there is none,
 * when it went down, or when started_at changed: a new process. */
#define AGENTS_STORE_BASE(col)                                                                     \
	"CASE WHEN a." col " IS NULL OR excluded." col " < a." col                                 \
	" OR a.started_at IS DISTINCT FROM excluded.started_at THEN 0 ELSE a." col " END"

/* The identity index's key (schema/0010_agents_scope.sql): NULL parts are ''. */
/* A known worker's row a (old values) from the beat excluded (new values). */
#define AGENTS_STORE_SET                                                                                                           \
	"agent_name = excluded.agent_name, status = excluded.status,"                                                              \
	" active_sessions = excluded.active_sessions, version = excluded.version,"                                                 \
	" region = excluded.region, host = excluded.host, started_at = excluded.started_at,"                                       \
	" client_ts = excluded.client_ts, last_seen = excluded.last_seen,"                                                         \
	" sink_recorded = excluded.sink_recorded, sink_sent = excluded.sink_sent,"                                                 \
	" sink_dropped = excluded.sink_dropped, sink_rejected = excluded.sink_rejected,"                                           \
	" sink_queued = excluded.sink_queued, sink_spooled_rows = excluded.sink_spooled_rows,"                                     \
	" sink_spool_bytes = excluded.sink_spool_bytes,"                                                                           \
	" sink_last_error = excluded.sink_last_error,"                                                                             \
	" dropped_grew_at = CASE WHEN excluded.sink_dropped > " AGENTS_STORE_BASE(                                                 \
		"sink_dropped") " THEN excluded.last_seen ELSE a.dropped_grew_at END,"                                             \
				" rejected_grew_at = CASE WHEN excluded.sink_rejected > " AGENTS_STORE_BASE(                       \
					"sink_rejected") " THEN excluded.last_seen ELSE a.rejected_grew_at END,"                   \
							 " sink_stalled = coalesce(excluded.sink_queued > 0 AND a.sink_queued > 0" \
							 " AND excluded.sink_sent <= a.sink_sent"                                  \
							 " AND a.started_at IS NOT DISTINCT FROM excluded.started_at, false)"

/* Stores one beat of the worker (tenant, project, agent_id): tenant is the
 * key's scope (NULL: no tenant), project the key's scope when it has one,
 * else the beat's. A known worker is one UPDATE; a new one is created only
 * while its tenant has fewer than max_per_tenant workers (the tenant's count
 * row is locked meanwhile, so concurrent first beats cannot pass the quota),
 * and concurrent first beats of one worker make one row. 200, 429 with err
 * naming agents_max_per_tenant, or 503/500 with err (the database's text:
 * for the log only). */
int agents_store_beat(PGconn *conn, const struct agents_beat *b, const char *tenant,
		      const char *project, long long max_per_tenant, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* A filter on one text column: any value, NULL only, or one value. */
enum agents_match { AGENTS_ANY = 0, AGENTS_NULL, AGENTS_EQ };
struct agents_filter_one {
	enum agents_match match;
	const char *value; /* AGENTS_EQ */
};

/* The derived states a listing filters on, as bits of a set; names in
 * agents_store_status_names and agents_store_delivery_names, in bit order. */
#define AGENTS_NSTATUS 3
#define AGENTS_NDELIVERY 5
extern const char *const agents_store_status_names[AGENTS_NSTATUS];
extern const char *const agents_store_delivery_names[AGENTS_NDELIVERY];

struct agents_filter {
	struct agents_filter_one tenant, project, agent_name;
	unsigned status;   /* bits of agents_store_status_names; 0: any */
	unsigned delivery; /* bits of agents_store_delivery_names; 0: any */
};

/* Reads a comma-separated list of names (one of names[0..n)) into *bits.
 * 200, or 400 with err naming what ("status \"asleep\": must be ..."). */
int agents_store_parse_set(const char *what, const char *list, const char *const *names, int n,
			   unsigned *bits, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The listing's page order is the worker's identity key (sort key columns
 * below): tenant (none first), agent_id, project (none first). */
#define AGENTS_MAX_PAGE 5000
#define AGENTS_DEFAULT_PAGE 500
#define AGENTS_NKEYS 3
struct agents_page {
	int limit;			 /* 1..AGENTS_MAX_PAGE */
	const char *after[AGENTS_NKEYS]; /* the key of the last worker of the page
					  * before; NULLs: from the start */
};

/* Columns of agents_store_list's result, in order. */
enum agents_col {
	AGENTS_COL_AGENT_ID = 0,
	AGENTS_COL_AGENT_NAME,
	AGENTS_COL_TENANT,
	AGENTS_COL_PROJECT,
	AGENTS_COL_STATUS,
	AGENTS_COL_SESSIONS,
	AGENTS_COL_VERSION,
	AGENTS_COL_REGION,
	AGENTS_COL_HOST,
	AGENTS_COL_AGE_S,
	AGENTS_COL_DELIVERY,
	AGENTS_COL_RECORDED,
	AGENTS_COL_SENT,
	AGENTS_COL_DROPPED,
	AGENTS_COL_REJECTED,
	AGENTS_COL_BACKLOG,    /* queued + spooled_rows */
	AGENTS_COL_STARTED_AT, /* RFC 3339 in UTC, milliseconds */
	AGENTS_COL_LAST_SEEN,
	AGENTS_COL_QUEUED,
	AGENTS_COL_SPOOLED,
	AGENTS_COL_SPOOL_BYTES,
	AGENTS_COL_LAST_ERROR,
	AGENTS_COL_KEY, /* AGENTS_NKEYS columns: the page order's key */
	AGENTS_NCOLS = AGENTS_COL_KEY + AGENTS_NKEYS
};

/* One page of the roster in page order, after page->after, with status and
 * delivery derived now (ttl_s: agent_ttl_s): at most page->limit + 1 rows,
 * the last one only saying that there is more. NULL with *status (503 or
 * 500) and err on failure; the caller owns the result. */
PGresult *agents_store_list(PGconn *conn, const struct agents_filter *f,
			    const struct agents_page *page, int ttl_s, int *status, char *err,
			    size_t errlen);

/* The fleet's gauges for /metrics. */
struct agents_gauges {
	uint64_t idle, busy, offline;
	uint64_t dropped; /* sink dropped rows, summed over the roster */
	uint64_t backlog; /* sink queued + spooled rows, summed */
};
bool agents_store_gauges(PGconn *conn, int ttl_s, struct agents_gauges *g, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Removes (with dry_run: counts) workers offline for longer than forget_s,
 * that is last seen more than ttl_s + forget_s ago. */
bool agents_store_forget(PGconn *conn, int ttl_s, int forget_s, bool dry_run, long long *n,
			 char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
