/* The roster table's SQL (schema/0006_agents.sql). Status and delivery are
 * derived when read, from the database's clock, so every replica and the CLI
 * agree on them:
 * - status: "offline" once last_seen is older than agent_ttl_s, else what
 *   the worker last said;
 * - delivery: "unknown" without sink counters; "dropping" when dropped grew
 *   at the last beat or within the hour; "rejecting" when rejected grew
 *   within the hour; "backlog" with rows in spool files, or rows queued at
 *   two beats running with nothing sent between; else "ok". */
#include "agents_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents_beat.h"
#include "buf.h"
#include "db.h"
#include "rollup_params.h"

#define AGENTS_KEY_TENANT(t) "coalesce('+' || " t ", '')"
#define AGENTS_KEY_PROJECT(p) "coalesce('+' || " p ", '')"

#define AGENTS_COLUMNS                                                                             \
	"tenant_id, agent_id, agent_name, project, status, active_sessions, version, region,"      \
	" host, started_at, client_ts, last_seen, sink_recorded, sink_sent, sink_dropped,"         \
	" sink_rejected, sink_queued, sink_spooled_rows, sink_spool_bytes, sink_last_error,"       \
	" dropped_grew_at, rejected_grew_at"

/* The beat's values, in AGENTS_COLUMNS order and named like them. */
#define AGENTS_VALUES                                                                              \
	"$1::text AS tenant_id, $2::text AS agent_id, $3::text AS agent_name,"                     \
	" $4::text AS project, $5::text AS status, $6::int AS active_sessions,"                    \
	" $7::text AS version, $8::text AS region, $9::text AS host,"                              \
	" to_timestamp($10::float8) AS started_at, to_timestamp($11::float8) AS client_ts,"        \
	" now() AS last_seen, $12::bigint AS sink_recorded, $13::bigint AS sink_sent,"             \
	" $14::bigint AS sink_dropped, $15::bigint AS sink_rejected, $16::bigint AS sink_queued,"  \
	" $17::bigint AS sink_spooled_rows, $18::bigint AS sink_spool_bytes,"                      \
	" $19::text AS sink_last_error,"                                                           \
	" CASE WHEN $14::bigint > 0 THEN now() END AS dropped_grew_at,"                            \
	" CASE WHEN $15::bigint > 0 THEN now() END AS rejected_grew_at"

/* A known worker: one UPDATE through the identity index. */
static const char agents_update_sql[] =
	"UPDATE agents AS a SET " AGENTS_STORE_SET " FROM (SELECT " AGENTS_VALUES ") AS excluded"
	" WHERE " AGENTS_KEY_TENANT("a.tenant_id") " = " AGENTS_KEY_TENANT("$1::text") " AND a.agent_id = $2::text AND " AGENTS_KEY_PROJECT(
		"a.project") " = " AGENTS_KEY_PROJECT("$4::text");

/* The tenant's count row, so the insert below has a row to lock. */
static const char agents_count_row_sql[] =
	"INSERT INTO agents_tenant_counts (tenant_id) VALUES ($1::text)"
	" ON CONFLICT ((" AGENTS_KEY_TENANT("tenant_id") ")) DO NOTHING";

/* A new worker, while its tenant is under the quota ($20). The count row is
 * locked until commit (its trigger adds the new row to it meanwhile), so
 * concurrent new workers of one tenant take turns and cannot pass it. */
static const char agents_insert_sql[] =
	"WITH quota AS (SELECT workers FROM agents_tenant_counts"
	" WHERE " AGENTS_KEY_TENANT("tenant_id") " = " AGENTS_KEY_TENANT(
		"$1::text") " FOR UPDATE)"
			    " INSERT INTO agents AS a (" AGENTS_COLUMNS ") SELECT " AGENTS_VALUES
			    " WHERE coalesce((SELECT workers FROM quota), 0) < $20::bigint"
			    " ON CONFLICT ((" AGENTS_KEY_TENANT("tenant_id") "), agent_id, (" AGENTS_KEY_PROJECT(
				    "project") ")) DO UPDATE SET " AGENTS_STORE_SET;

/* Runs one of the beat's statements: rows changed, or -1 with err and *status. */
static long long agents_store_exec(PGconn *conn, const char *sql, int n, const char *const *p,
				   int *status, char *err, size_t errlen)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, p, NULL, NULL, 0);
	long long rows = -1;

	if (PQresultStatus(res) == PGRES_COMMAND_OK) {
		rows = atoll(PQcmdTuples(res));
	} else {
		db_result_error(conn, res, err, errlen);
		*status = db_fault_status(db_classify(conn, res));
	}
	PQclear(res);
	return rows;
}

int agents_store_beat(PGconn *conn, const struct agents_beat *b, const char *tenant,
		      const char *project, long long max_per_tenant, char *err, size_t errlen)
{
	char num[11][32];
	const char *p[20];
	const long long *counters[7] = { &b->sink.recorded,   &b->sink.sent,
					 &b->sink.dropped,    &b->sink.rejected,
					 &b->sink.queued,     &b->sink.spooled_rows,
					 &b->sink.spool_bytes };
	long long n;
	int status = 200;

	p[0] = tenant;
	p[1] = b->agent_id;
	p[2] = b->agent_name;
	p[3] = project;
	p[4] = b->status;
	snprintf(num[0], sizeof(num[0]), "%lld", b->active_sessions);
	p[5] = b->has_sessions ? num[0] : NULL;
	p[6] = b->version;
	p[7] = b->region;
	p[8] = b->host;
	snprintf(num[1], sizeof(num[1]), "%.6f", b->started_at);
	p[9] = b->has_started_at ? num[1] : NULL;
	snprintf(num[2], sizeof(num[2]), "%.6f", b->ts);
	p[10] = b->has_ts ? num[2] : NULL;
	for (int i = 0; i < 7; i++) {
		/* Counters 3..9 share num[3..9]: one buffer each. */
		snprintf(num[3 + i], sizeof(num[3 + i]), "%lld", *counters[i]);
		p[11 + i] = b->has_sink ? num[3 + i] : NULL;
	}
	p[18] = b->has_sink ? b->sink.last_error : NULL;
	snprintf(num[10], sizeof(num[10]), "%lld", max_per_tenant);
	p[19] = num[10];

	if ((n = agents_store_exec(conn, agents_update_sql, 19, p, &status, err, errlen)) != 0)
		return n < 0 ? status : 200;
	if (agents_store_exec(conn, agents_count_row_sql, 1, p, &status, err, errlen) < 0 ||
	    (n = agents_store_exec(conn, agents_insert_sql, 20, p, &status, err, errlen)) < 0)
		return status;
	/* Refused at the quota; unless a concurrent first beat of this very worker
	 * took the last place, which this statement's snapshot could not see. */
	if (n == 0 &&
	    (n = agents_store_exec(conn, agents_update_sql, 19, p, &status, err, errlen)) == 0) {
		snprintf(err, errlen,
			 "agents_max_per_tenant %lld: %s%s%s already has that many workers in the "
			 "roster; a new agent_id is refused until retention forgets offline ones "
			 "(agent_forget_after_s) or the quota is raised",
			 max_per_tenant, tenant ? "tenant \"" : "the workers without a tenant",
			 tenant ? tenant : "", tenant ? "\"" : "");
		return 429;
	}
	return n < 0 ? status : 200;
}

/* Statuses and deliveries, in bit order (the SQL below derives them). */
const char *const agents_store_status_names[AGENTS_NSTATUS] = { "idle", "busy", "offline" };
const char *const agents_store_delivery_names[AGENTS_NDELIVERY] = { "ok", "backlog", "dropping",
								    "rejecting", "unknown" };

int agents_store_parse_set(const char *what, const char *list, const char *const *names, int n,
			   unsigned *bits, char *err, size_t errlen)
{
	const char *p = list;

	*bits = 0;
	for (;;) {
		size_t len = strcspn(p, ",");
		int i = 0;

		while (i < n && !(strlen(names[i]) == len && strncmp(names[i], p, len) == 0))
			i++;
		if (i == n) {
			char known[128];
			size_t pos = 0;

			for (int k = 0; k < n; k++)
				pos += (size_t)snprintf(known + pos, sizeof(known) - pos,
							"%s\"%s\"",
							k == 0	     ? ""
							: k == n - 1 ? " or "
								     : ", ",
							names[k]);
			char v[40];

			snprintf(v, sizeof(v), "%.*s", (int)(len < sizeof(v) ? len : sizeof(v) - 1),
				 p);
			v[rollup_params_clip(v, 32)] = '\0';
			snprintf(err, errlen,
				 "%s \"%s\": must be %s, or a comma-separated list of them", what,
				 v, known);
			return 400;
		}
		*bits |= 1u << i;
		if (!p[len])
			return 200;
		p += len + 1;
	}
}

/* The roster with status and delivery derived and the page key; $1 is
 * agent_ttl_s. */
#define AGENTS_DERIVED                                                                             \
	"SELECT a.*,"                                                                              \
	" CASE WHEN a.last_seen < now() - make_interval(secs => $1::int) THEN 'offline'"           \
	"  ELSE a.status END AS st,"                                                               \
	" CASE WHEN a.sink_recorded IS NULL THEN 'unknown'"                                        \
	"  WHEN a.dropped_grew_at >= a.last_seen"                                                  \
	"   OR a.dropped_grew_at > now() - interval '1 hour' THEN 'dropping'"                      \
	"  WHEN a.rejected_grew_at > now() - interval '1 hour' THEN 'rejecting'"                   \
	"  WHEN a.sink_spooled_rows > 0 OR a.sink_stalled THEN 'backlog'"                          \
	"  ELSE 'ok' END AS delivery,"                                                             \
	" greatest(0, floor(extract(epoch FROM now() - a.last_seen)))::bigint AS age,"             \
	" " AGENTS_KEY_TENANT("a.tenant_id") " AS k_tenant,"                                       \
					     " " AGENTS_KEY_PROJECT("a.project") " AS k_project"   \
										 " FROM agents a"

#define AGENTS_RFC3339(col)                                                                        \
	"to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The columns of enum agents_col (the collector renders each worker's JSON
 * from them: agents_page_agent_json). $2/$3: tenant and project as their key
 * text (NULL: any); $4: agent_name
 * match (0 any, 1 none, 2 equal to $5); $6/$7: text[] of statuses and
 * deliveries (NULL: any); $8..$10: the key to start after; $11: rows.
 * $12..$15 restate a filter on the rare states (agents_store_rare) as
 * conditions indexes answer: $12 status offline only (agents_last_seen);
 * $13 delivery dropping and/or rejecting only, $14 with dropping and $15
 * with rejecting (the partial indexes of schema/0018_agents_problems.sql). */
static const char agents_list_sql[] =
	"SELECT agent_id, agent_name, tenant_id, project, st,"
	" CASE WHEN st = 'offline' THEN 0 ELSE active_sessions END, version, region, host, age,"
	" delivery, sink_recorded, sink_sent, sink_dropped, sink_rejected,"
	" sink_queued + sink_spooled_rows, " AGENTS_RFC3339(
		"started_at") ","
			      " " AGENTS_RFC3339(
				      "last_seen") ", sink_queued, sink_spooled_rows, sink_spool_bytes,"
						   " sink_last_error, k_tenant, agent_id, k_project"
						   " FROM (" AGENTS_DERIVED ") d"
						   " WHERE ($2::text IS NULL OR k_tenant = $2)"
						   " AND ($3::text IS NULL OR k_project = $3)"
						   " AND ($4::int = 0 OR ($4 = 1 AND agent_name IS NULL) OR ($4 = 2 AND agent_name = $5))"
						   " AND ($6::text[] IS NULL OR st = ANY ($6))"
						   " AND ($7::text[] IS NULL OR delivery = ANY ($7))"
						   " AND (k_tenant, agent_id, k_project) > ($8::text, $9::text, $10::text)"
						   " AND ($12::bool IS NOT TRUE OR last_seen < now() - make_interval(secs => $1::int))"
						   " AND ($13::bool IS NOT TRUE OR ($14::bool AND dropped_grew_at IS NOT NULL)"
						   "  OR ($15::bool AND rejected_grew_at IS NOT NULL))"
						   " ORDER BY k_tenant, agent_id, k_project LIMIT $11::int";

/* A filter's key text into out (NULL: any). */
static const char *agents_store_key_param(const struct agents_filter_one *f, char **out)
{
	*out = NULL;
	if (f->match == AGENTS_ANY)
		return NULL;
	if (f->match == AGENTS_NULL)
		return "";
	if (asprintf(out, "+%s", f->value) < 0)
		*out = NULL;
	return *out;
}

/* A set of names as a text[] literal into b (nothing for the empty set). */
static const char *agents_store_set_param(unsigned bits, const char *const *names, int n,
					  struct buf *b)
{
	if (!bits)
		return NULL;
	buf_putc(b, '{');
	for (int i = 0; i < n; i++)
		if (bits & 1u << i)
			buf_printf(b, "%s%s", b->len > 1 ? "," : "", names[i]);
	buf_putc(b, '}');
	return b->data;
}

/* The rare states a page may ask for alone (offline; dropping, rejecting):
 * few workers match, so the rows are best found through their indexes and
 * sorted. Any other page is most of the roster, best read in page order
 * straight off the identity index; the planner cannot tell the two apart
 * (status and delivery are derived), so it is told: enable_sort off for the
 * second kind. The four hints are $12..$15 of agents_list_sql. */
static bool agents_store_rare(const struct agents_filter *f, const char *hint[4])
{
	/* Bits in the order of agents_store_status_names and _delivery_names. */
	unsigned off = 1u << 2, drop = 1u << 2, rej = 1u << 3;

	hint[0] = f->status == off ? "t" : "f";
	hint[1] = f->delivery && !(f->delivery & ~(drop | rej)) ? "t" : "f";
	hint[2] = f->delivery & drop ? "t" : "f";
	hint[3] = f->delivery & rej ? "t" : "f";
	/* An agent_name is a few workers too, though no index holds it. */
	return hint[0][0] == 't' || hint[1][0] == 't' || f->agent_name.match != AGENTS_ANY;
}

PGresult *agents_store_list(PGconn *conn, const struct agents_filter *f,
			    const struct agents_page *page, int ttl_s, int *status, char *err,
			    size_t errlen)
{
	char ttl[16], m[4], lim[16], *keys[2];
	const char *p[15];
	bool rare = agents_store_rare(f, p + 11), in_tx = false;
	struct buf sets[2];
	PGresult *res = NULL;

	buf_init(&sets[0], 0);
	buf_init(&sets[1], 0);
	snprintf(ttl, sizeof(ttl), "%d", ttl_s);
	snprintf(m, sizeof(m), "%d", (int)f->agent_name.match);
	snprintf(lim, sizeof(lim), "%d", page->limit + 1);
	p[0] = ttl;
	p[1] = agents_store_key_param(&f->tenant, &keys[0]);
	p[2] = agents_store_key_param(&f->project, &keys[1]);
	p[3] = m;
	p[4] = f->agent_name.match == AGENTS_EQ ? f->agent_name.value : NULL;
	p[5] = agents_store_set_param(f->status, agents_store_status_names, AGENTS_NSTATUS,
				      &sets[0]);
	p[6] = agents_store_set_param(f->delivery, agents_store_delivery_names, AGENTS_NDELIVERY,
				      &sets[1]);
	/* agent_id is never empty, so ('', '', '') is before every worker. */
	for (int i = 0; i < AGENTS_NKEYS; i++)
		p[7 + i] = page->after[0] ? page->after[i] : "";
	p[10] = lim;
	if ((f->tenant.match == AGENTS_EQ && !keys[0]) ||
	    (f->project.match == AGENTS_EQ && !keys[1]) || sets[0].over || sets[1].over) {
		snprintf(err, errlen, "out of memory");
		*status = 503;
		goto out;
	}
	if (!rare) {
		res = PQexec(conn, "BEGIN; SET LOCAL enable_sort = off");
		in_tx = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
	}
	res = PQexecParams(conn, agents_list_sql, 15, NULL, p, NULL, NULL, 0);
	if (in_tx)
		PQclear(PQexec(conn,
			       PQresultStatus(res) == PGRES_TUPLES_OK ? "COMMIT" : "ROLLBACK"));
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != AGENTS_NCOLS) {
		db_result_error(conn, res, err, errlen);
		*status = db_fault_status(db_classify(conn, res));
		PQclear(res);
		res = NULL;
	}
out:
	free(keys[0]);
	free(keys[1]);
	buf_release(&sets[0]);
	buf_release(&sets[1]);
	return res;
}

bool agents_store_gauges(PGconn *conn, int ttl_s, struct agents_gauges *g, char *err, size_t errlen)
{
	char ttl[16];
	const char *p[1] = { ttl };
	PGresult *res;

	snprintf(ttl, sizeof(ttl), "%d", ttl_s);
	res = PQexecParams(
		conn,
		"SELECT count(*) FILTER (WHERE st = 'idle'), count(*) FILTER (WHERE st = 'busy'),"
		" count(*) FILTER (WHERE st = 'offline'), coalesce(sum(sink_dropped), 0),"
		" coalesce(sum(sink_queued + sink_spooled_rows), 0)"
		" FROM (" AGENTS_DERIVED ") d",
		1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		return false;
	}
	g->idle = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	g->busy = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
	g->offline = strtoull(PQgetvalue(res, 0, 2), NULL, 10);
	g->dropped = strtoull(PQgetvalue(res, 0, 3), NULL, 10);
	g->backlog = strtoull(PQgetvalue(res, 0, 4), NULL, 10);
	PQclear(res);
	return true;
}

bool agents_store_forget(PGconn *conn, int ttl_s, int forget_s, bool dry_run, long long *n,
			 char *err, size_t errlen)
{
	char secs[32];
	const char *p[1] = { secs };
	PGresult *res;

	snprintf(secs, sizeof(secs), "%lld", (long long)ttl_s + forget_s);
	res = PQexecParams(conn,
			   dry_run ? "SELECT count(*) FROM agents"
				     " WHERE last_seen < now() - make_interval(secs => $1::bigint)"
				   : "DELETE FROM agents"
				     " WHERE last_seen < now() - make_interval(secs => $1::bigint)",
			   1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != (dry_run ? PGRES_TUPLES_OK : PGRES_COMMAND_OK)) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		return false;
	}
	*n = atoll(dry_run ? PQgetvalue(res, 0, 0) : PQcmdTuples(res));
	PQclear(res);
	return true;
}
