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
#include "db.h"

/* Growth is measured from the stored counter, or from 0 when there is none,
 * when it went down, or when started_at changed: a new process. */
#define AGENTS_BASE(col)                                                                           \
	"CASE WHEN a." col " IS NULL OR EXCLUDED." col " < a." col                                 \
	" OR a.started_at IS DISTINCT FROM EXCLUDED.started_at THEN 0 ELSE a." col " END"

static const char agents_upsert_sql[] =
	"INSERT INTO agents AS a (tenant_id, agent_id, agent_name, project, status,"
	" active_sessions, version, region, host, started_at, client_ts, last_seen,"
	" sink_recorded, sink_sent, sink_dropped, sink_rejected, sink_queued, sink_spooled_rows,"
	" sink_spool_bytes, sink_last_error, dropped_grew_at, rejected_grew_at)"
	" VALUES ($1, $2, $3, $4, $5, $6::int, $7, $8, $9, to_timestamp($10::float8),"
	" to_timestamp($11::float8), now(), $12::bigint, $13::bigint, $14::bigint, $15::bigint,"
	" $16::bigint, $17::bigint, $18::bigint, $19,"
	" CASE WHEN $14::bigint > 0 THEN now() END, CASE WHEN $15::bigint > 0 THEN now() END)"
	" ON CONFLICT ON CONSTRAINT agents_identity DO UPDATE SET"
	" agent_name = EXCLUDED.agent_name, project = EXCLUDED.project, status = EXCLUDED.status,"
	" active_sessions = EXCLUDED.active_sessions, version = EXCLUDED.version,"
	" region = EXCLUDED.region, host = EXCLUDED.host, started_at = EXCLUDED.started_at,"
	" client_ts = EXCLUDED.client_ts, last_seen = EXCLUDED.last_seen,"
	" sink_recorded = EXCLUDED.sink_recorded, sink_sent = EXCLUDED.sink_sent,"
	" sink_dropped = EXCLUDED.sink_dropped, sink_rejected = EXCLUDED.sink_rejected,"
	" sink_queued = EXCLUDED.sink_queued, sink_spooled_rows = EXCLUDED.sink_spooled_rows,"
	" sink_spool_bytes = EXCLUDED.sink_spool_bytes,"
	" sink_last_error = EXCLUDED.sink_last_error,"
	" dropped_grew_at = CASE WHEN EXCLUDED.sink_dropped > " AGENTS_BASE(
		"sink_dropped") " THEN EXCLUDED.last_seen ELSE a.dropped_grew_at END,"
				" rejected_grew_at = CASE WHEN EXCLUDED.sink_rejected > " AGENTS_BASE(
					"sink_rejected") " THEN EXCLUDED.last_seen ELSE a.rejected_grew_at END,"
							 " sink_stalled = coalesce(EXCLUDED.sink_queued > 0 AND a.sink_queued > 0"
							 " AND EXCLUDED.sink_sent <= a.sink_sent"
							 " AND a.started_at IS NOT DISTINCT FROM EXCLUDED.started_at, false)";

int agents_store_beat(PGconn *conn, const struct agents_beat *b, const char *tenant,
		      const char *project, char *err, size_t errlen)
{
	char num[10][32];
	const char *p[19];
	const long long *counters[7] = { &b->sink.recorded,   &b->sink.sent,
					 &b->sink.dropped,    &b->sink.rejected,
					 &b->sink.queued,     &b->sink.spooled_rows,
					 &b->sink.spool_bytes };
	PGresult *res;
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
	res = PQexecParams(conn, agents_upsert_sql, 19, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_result_error(conn, res, err, errlen);
		status = db_fault_status(db_classify(conn, res));
	}
	PQclear(res);
	return status;
}

/* The roster with status and delivery derived; $1 is agent_ttl_s. */
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
	" greatest(0, floor(extract(epoch FROM now() - a.last_seen)))::bigint AS age"              \
	" FROM agents a"

#define AGENTS_RFC3339(col)                                                                        \
	"to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static const char agents_list_sql[] =
	"SELECT json_build_object('agent_id', agent_id, 'agent_name', agent_name,"
	" 'tenant_id', tenant_id, 'project', project, 'status', st,"
	" 'active_sessions', CASE WHEN st = 'offline' THEN 0 ELSE active_sessions END,"
	" 'version', version, 'region', region, 'host', host,"
	" 'started_at', " AGENTS_RFC3339(
		"started_at") ","
			      " 'last_seen', " AGENTS_RFC3339(
				      "last_seen") ", 'last_seen_age_s', age,"
						   " 'sink', CASE WHEN sink_recorded IS NULL THEN NULL ELSE json_build_object("
						   "  'recorded', sink_recorded, 'sent', sink_sent, 'dropped', sink_dropped,"
						   "  'rejected', sink_rejected, 'queued', sink_queued, 'spooled_rows', sink_spooled_rows,"
						   "  'spool_bytes', sink_spool_bytes, 'last_error', sink_last_error) END,"
						   " 'delivery', delivery)::text,"
						   " agent_id, agent_name, tenant_id, project, st,"
						   " CASE WHEN st = 'offline' THEN 0 ELSE active_sessions END, version, region, host, age,"
						   " delivery, sink_recorded, sink_sent, sink_dropped, sink_rejected,"
						   " sink_queued + sink_spooled_rows"
						   " FROM (" AGENTS_DERIVED ") d"
						   " WHERE ($2::int = 0 OR ($2 = 1 AND tenant_id IS NULL) OR ($2 = 2 AND tenant_id = $3))"
						   " AND ($4::int = 0 OR ($4 = 1 AND project IS NULL) OR ($4 = 2 AND project = $5))"
						   " AND ($6::int = 0 OR ($6 = 1 AND agent_name IS NULL) OR ($6 = 2 AND agent_name = $7))"
						   " AND ($8::text IS NULL OR st = $8)"
						   " ORDER BY tenant_id NULLS FIRST, agent_id";

PGresult *agents_store_list(PGconn *conn, const struct agents_filter *f, int ttl_s, int *status,
			    char *err, size_t errlen)
{
	char ttl[16], m[3][4];
	const struct agents_filter_one *one[3] = { &f->tenant, &f->project, &f->agent_name };
	const char *p[8];
	PGresult *res;

	snprintf(ttl, sizeof(ttl), "%d", ttl_s);
	p[0] = ttl;
	for (int i = 0; i < 3; i++) {
		snprintf(m[i], sizeof(m[i]), "%d", (int)one[i]->match);
		p[1 + 2 * i] = m[i];
		p[2 + 2 * i] = one[i]->match == AGENTS_EQ ? one[i]->value : NULL;
	}
	p[7] = f->status;
	res = PQexecParams(conn, agents_list_sql, 8, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == AGENTS_NCOLS)
		return res;
	db_result_error(conn, res, err, errlen);
	*status = db_fault_status(db_classify(conn, res));
	PQclear(res);
	return NULL;
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
