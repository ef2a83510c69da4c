/* Retention and partition upkeep, for `serve` (hourly, on the pool) and for
 * `vgcollector retention`. cost_rows is partitioned by month (cost_rows_YYYYMM,
 * created by vgc_ensure_partition); ids live on in cost_row_ids, see the top
 * of schema/0001_init.sql.
 *
 * A partition is dropped only when all of it is older than retention_months:
 * its upper bound is at or before now() - retention_months. Each drop is its
 * own short transaction: the retention horizon rises to the month's upper
 * bound, the month's ids leave cost_row_ids, then the partition is dropped.
 * Ingest refuses rows older than the horizon (schema/0002_ledger_faults.sql),
 * so a resent row of a dropped month is never counted again; the month's
 * rollups stay as history. DROP takes an ACCESS EXCLUSIVE lock on cost_rows,
 * which would queue every ingest behind it while it waits, so it runs with a
 * short lock_timeout and a busy month is simply retried on the next pass.
 *
 * Collectors take turns through an advisory lock taken inside each drop's
 * transaction (pg_try_advisory_xact_lock), never a session lock: nothing
 * outlives a transaction, so it all works through a transaction-mode pooler.
 * Creating partitions needs no turn: vgc_ensure_partition locks for itself. */
#include "retention.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents_store.h"
#include "buf.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "pool.h"
#include "tasks.h"

#define RETENTION_LOCK "hashtext('vgcollector.retention')"

/* Month partitions whose upper bound is at or before now() - $1 months:
 * name, lower bound, upper bound (UTC, ISO). Other children are ignored. */
static const char retention_due_sql[] =
	"SELECT c.relname, to_char(b.lo, 'YYYY-MM-DD'), to_char(b.hi, 'YYYY-MM-DD')"
	" FROM pg_inherits i"
	" JOIN pg_class c ON c.oid = i.inhrelid"
	" CROSS JOIN LATERAL (SELECT to_date(right(c.relname, 6), 'YYYYMM')::timestamp AS lo,"
	"   to_date(right(c.relname, 6), 'YYYYMM')::timestamp + interval '1 month' AS hi) b"
	" WHERE i.inhparent = 'cost_rows'::regclass"
	"   AND c.relname ~ '^cost_rows_[0-9]{4}(0[1-9]|1[0-2])$'"
	"   AND b.hi AT TIME ZONE 'UTC' <= now() - make_interval(months => $1::int)"
	" ORDER BY c.relname";

/* This month and the $1 after it: partition name, whether it is missing, and
 * a timestamp inside the month for vgc_ensure_partition. */
static const char retention_ahead_sql[] =
	"SELECT 'cost_rows_' || to_char(t AT TIME ZONE 'UTC', 'YYYYMM') AS name,"
	"   to_regclass('cost_rows_' || to_char(t AT TIME ZONE 'UTC', 'YYYYMM')) IS NULL,"
	"   t::text"
	" FROM (SELECT now() + make_interval(months => g) AS t"
	"       FROM generate_series(0, $1::int) g) m"
	" ORDER BY t";

static PGresult *retention_query(PGconn *conn, const char *sql, int nparams,
				 const char *const *params, char *err, size_t errlen)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		return NULL;
	}
	return res;
}

/* Drops one due partition and its ids in one transaction, raising the
 * retention horizon (vgc_retention.dropped_before) to the month's upper bound
 * in the same transaction, so no ingest can store a row of that month again. */
static bool retention_drop(PGconn *conn, const char *name, const char *lo, const char *hi,
			   long long *ids, bool *locked_out, char *err, size_t errlen)
{
	const char *params[2] = { lo, hi };
	char *ident = PQescapeIdentifier(conn, name, strlen(name));
	char sql[256];
	PGresult *res;

	if (!ident) {
		db_error(conn, err, errlen);
		return false;
	}
	/* The horizon first, under FOR UPDATE: it waits for ingest transactions
	 * that read the old horizon FOR SHARE, and ingests that start after it
	 * wait for this commit and then see the new horizon. */
	if (!db_exec(conn, "BEGIN", err, errlen) ||
	    !db_exec(conn, "SET LOCAL lock_timeout = '3s'", err, errlen))
		goto fail;
	res = PQexec(conn, "SELECT pg_try_advisory_xact_lock(" RETENTION_LOCK ")");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		goto fail;
	}
	*locked_out = strcmp(PQgetvalue(res, 0, 0), "t") != 0;
	PQclear(res);
	if (*locked_out) {
		db_rollback(conn);
		PQfreemem(ident);
		return true;
	}
	if (!db_exec(conn, "SELECT 1 FROM vgc_retention FOR UPDATE", err, errlen))
		goto fail;
	res = PQexecParams(conn,
			   "UPDATE vgc_retention SET dropped_before = greatest(dropped_before,"
			   " $1::timestamp AT TIME ZONE 'UTC')",
			   1, NULL, &hi, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	res = PQexecParams(conn,
			   "DELETE FROM cost_row_ids WHERE ts >= $1::timestamp AT TIME ZONE 'UTC'"
			   " AND ts < $2::timestamp AT TIME ZONE 'UTC'",
			   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		goto fail;
	}
	*ids = atoll(PQcmdTuples(res));
	PQclear(res);
	/* IF EXISTS: another collector may have dropped it since we listed it. */
	snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", ident);
	if (!db_exec(conn, sql, err, errlen) || !db_exec(conn, "COMMIT", err, errlen))
		goto fail;
	PQfreemem(ident);
	return true;
fail:
	db_rollback(conn);
	PQfreemem(ident);
	return false;
}

/* The pass itself; the caller holds the lock (or runs dry). */
static bool retention_pass(PGconn *conn, int months, int ahead, const int agents[2], bool dry_run,
			   struct buf *out, struct retention_report *rep, char *err, size_t errlen)
{
	char nbuf[16];
	const char *params[1] = { nbuf };
	PGresult *res;

	if (months > 0) {
		snprintf(nbuf, sizeof(nbuf), "%d", months);
		if (!(res = retention_query(conn, retention_due_sql, 1, params, err, errlen)))
			return false;
		for (int i = 0; i < PQntuples(res); i++) {
			const char *name = PQgetvalue(res, i, 0), *lo = PQgetvalue(res, i, 1),
				   *hi = PQgetvalue(res, i, 2);
			long long ids = 0;

			if (dry_run) {
				buf_printf(out,
					   "would drop %s (%s to %s UTC, older than %d months)\n",
					   name, lo, hi, months);
				rep->dropped++;
				continue;
			}
			if (!retention_drop(conn, name, lo, hi, &ids, &rep->locked_out, err,
					    errlen)) {
				char msg[512];
				snprintf(msg, sizeof(msg), "%s", err);
				snprintf(err, errlen, "dropping %s: %s", name, msg);
				PQclear(res);
				return false;
			}
			if (rep->locked_out) {
				PQclear(res);
				return true;
			}
			buf_printf(out, "dropped %s (%s to %s UTC) and %lld of its ids\n", name, lo,
				   hi, ids);
			rep->dropped++;
			rep->ids_deleted += ids;
		}
		PQclear(res);
	}

	snprintf(nbuf, sizeof(nbuf), "%d", ahead);
	if (!(res = retention_query(conn, retention_ahead_sql, 1, params, err, errlen)))
		return false;
	for (int i = 0; i < PQntuples(res); i++) {
		const char *t = PQgetvalue(res, i, 2);
		PGresult *r;

		if (strcmp(PQgetvalue(res, i, 1), "t") != 0)
			continue;
		if (dry_run) {
			buf_printf(out, "would create %s\n", PQgetvalue(res, i, 0));
			rep->created++;
			continue;
		}
		r = retention_query(conn, "SELECT vgc_ensure_partition($1::timestamptz)", 1, &t,
				    err, errlen);
		if (!r) {
			PQclear(res);
			return false;
		}
		PQclear(r);
		buf_printf(out, "created %s\n", PQgetvalue(res, i, 0));
		rep->created++;
	}
	PQclear(res);
	if (!agents_store_forget(conn, agents[0], agents[1], dry_run, &rep->agents_forgotten, err,
				 errlen))
		return false;
	if (rep->agents_forgotten)
		buf_printf(out, "%s %lld roster workers offline for more than %d s\n",
			   dry_run ? "would forget" : "forgot", rep->agents_forgotten, agents[1]);
	return true;
}

bool retention_run(PGconn *conn, int retention_months, int partitions_ahead, int agent_ttl_s,
		   int agent_forget_after_s, bool dry_run, struct buf *out,
		   struct retention_report *rep, char *err, size_t errlen)
{
	const int agents[2] = { agent_ttl_s, agent_forget_after_s };

	memset(rep, 0, sizeof(*rep));
	return retention_pass(conn, retention_months, partitions_ahead, agents, dry_run, out, rep,
			      err, errlen);
}

/* ---- the periodic pass inside `serve` (a task of tasks.c) ---------------- */

struct retention {
	struct pool *pool;
	const struct config *cfg; /* the server's live config, read on each pass */
};

struct retention_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct retention *r;
	struct task *t;
	int months, ahead, agent_ttl_s, agent_forget_after_s;
	bool ok;
	struct retention_report rep;
	struct buf out;
	char err[1024];
};

/* Worker thread. */
static void retention_work(struct pool_job *pj, struct pool_worker *w)
{
	struct retention_job *job = (struct retention_job *)pj;
	PGconn *conn = pool_worker_conn(w, job->err, sizeof(job->err));

	if (!conn)
		return;
	job->ok = retention_run(conn, job->months, job->ahead, job->agent_ttl_s,
				job->agent_forget_after_s, false, &job->out, &job->rep, job->err,
				sizeof(job->err));
	if (!job->ok && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
}

/* Loop thread: log what happened; the pass is over. Another collector holding
 * the lock is no failure. */
static void retention_done(struct pool_job *pj)
{
	struct retention_job *job = (struct retention_job *)pj;
	char *line, *save = NULL;

	if (job->rep.locked_out)
		log_debug("retention: another collector holds the lock; skipped");
	for (line = job->out.data ? strtok_r(job->out.data, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save))
		log_info("retention: %s", line);
	if (!job->ok && !job->rep.locked_out)
		log_warn("retention: %s (retried in retention_interval_s, %d s)", job->err,
			 job->r->cfg->retention_interval_s);
	tasks_done(job->t, job->ok || job->rep.locked_out);
	buf_release(&job->out);
	free(job);
}

void retention_task_run(void *state, struct task *t)
{
	struct retention *r = state;
	struct retention_job *job = calloc(1, sizeof(*job));

	if (!job) {
		log_warn("retention: out of memory; retried in retention_interval_s");
		tasks_done(t, false);
		return;
	}
	job->job.work = retention_work;
	job->job.done = retention_done;
	job->r = r;
	job->t = t;
	job->months = r->cfg->retention_months;
	job->ahead = r->cfg->partitions_ahead;
	job->agent_ttl_s = r->cfg->agent_ttl_s;
	job->agent_forget_after_s = r->cfg->agent_forget_after_s;
	buf_init(&job->out, 64 * 1024);
	if (!pool_submit(r->pool, &job->job)) {
		log_warn("retention: database pool saturated; retried in retention_interval_s");
		buf_release(&job->out);
		free(job);
		tasks_done(t, false);
	}
}

void *retention_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen)
{
	struct retention *r = calloc(1, sizeof(*r));

	(void)t;
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->pool = env->pool;
	r->cfg = env->cfg;
	return r;
}

void retention_task_free(void *state)
{
	free(state);
}
