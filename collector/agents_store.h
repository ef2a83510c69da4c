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

/* Stores one beat under tenant (the key's scope; NULL: no tenant) with
 * project (the key's scope when it has one, else the beat's). One
 * INSERT ... ON CONFLICT DO UPDATE: concurrent beats of one agent make one
 * row. 200, or 503/500 with err (the database's text: for the log only). */
int agents_store_beat(PGconn *conn, const struct agents_beat *b, const char *tenant,
		      const char *project, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* A filter on one text column: any value, NULL only, or one value. */
enum agents_match { AGENTS_ANY = 0, AGENTS_NULL, AGENTS_EQ };
struct agents_filter_one {
	enum agents_match match;
	const char *value; /* AGENTS_EQ */
};
struct agents_filter {
	struct agents_filter_one tenant, project, agent_name;
	const char *status; /* idle, busy, offline; NULL: any */
};

/* Columns of agents_store_list's result, in order. */
enum agents_col {
	AGENTS_COL_JSON = 0, /* the agent as the API's JSON object */
	AGENTS_COL_AGENT_ID,
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
	AGENTS_COL_BACKLOG, /* queued + spooled_rows */
	AGENTS_NCOLS
};

/* The roster, ordered by tenant (none first) and agent_id, with status and
 * delivery derived now (ttl_s: agent_ttl_s). NULL with *status (503 or 500)
 * and err on failure; the caller owns the result. */
PGresult *agents_store_list(PGconn *conn, const struct agents_filter *f, int ttl_s, int *status,
			    char *err, size_t errlen);

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
