/* The rollup's summariser (see rollup_fold.h and the top of
 * schema/0022_rollup_deltas.sql for why it is exact at every commit). */
#include "rollup_fold.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "pool.h"
#include "rollup_shape.h"
#include "tasks.h"

/* What is waiting, read before the fold: delta rows, the cost rows they sum,
 * and how long the oldest has waited. */
static const char rollup_fold_lag_sql[] =
	"SELECT count(*), coalesce(sum(requests), 0),"
	" coalesce(extract(epoch FROM clock_timestamp() - min(stored_at)), 0)"
	" FROM vgc_rollup_deltas";

/* The fold: delete at most $1 deltas of the days $2 (locked by
 * vgc_rollup_fold_begin) and add their sums to every rollup table, in one
 * statement: the hours, the days, and the narrow summaries per (hour, tenant,
 * project) and (day, tenant, project) (schema/0026_rollup_fold_in_step.sql).
 * Each table's rows are upserted in (time, keys) order, the order ingest's
 * writers of the hours took their row locks in; the days and the narrow
 * tables have no other writer but the daily summariser, which holds the day's
 * lock exclusively. Built once from the rollup shape. */
static char *rollup_fold_sql;
static pthread_once_t rollup_fold_sql_once = PTHREAD_ONCE_INIT;

#define ROLLUP_FOLD_DAY "date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"

/* One more CTE: "name AS (INSERT INTO table AS r (time, keys, measures)
 * SELECT time_expr, keys, sum(measures) FROM s GROUP BY ... ORDER BY ...
 * ON CONFLICT (time, keys) DO UPDATE SET m = r.m + excluded.m ...)". */
static void rollup_fold_sql_upsert(struct buf *b, const char *name, const char *table,
				   const char *timecol, const char *time_expr, const char *keys,
				   bool returning)
{
	buf_printf(b, ", %s AS (INSERT INTO %s AS r (%s, %s", name, table, timecol, keys);
	for (int i = 0; i < ROLLUP_NMEASURES; i++)
		if (rollup_measure_stored(&rollup_measures[i]))
			buf_printf(b, ", %s", rollup_measures[i].name);
	buf_printf(b, ") SELECT %s, %s", time_expr, keys);
	for (int i = 0; i < ROLLUP_NMEASURES; i++)
		if (rollup_measure_stored(&rollup_measures[i]))
			buf_printf(b, ", sum(%s)", rollup_measures[i].name);
	buf_printf(b, " FROM s GROUP BY 1, %s ORDER BY 1, %s ON CONFLICT (%s, %s) DO UPDATE SET ",
		   keys, keys, timecol, keys);
	for (int i = 0, n = 0; i < ROLLUP_NMEASURES; i++)
		if (rollup_measure_stored(&rollup_measures[i]))
			buf_printf(b, "%s%s = r.%s + excluded.%s", n++ ? ", " : "",
				   rollup_measures[i].name, rollup_measures[i].name,
				   rollup_measures[i].name);
	buf_printf(b, "%s)", returning ? " RETURNING 1" : "");
}

static void rollup_fold_sql_build(void)
{
	struct buf b, keys;

	buf_init(&b, 0);
	buf_init(&keys, 0);
	for (int i = 0; i < ROLLUP_NKEYS; i++)
		buf_printf(&keys, "%s%s", i ? ", " : "", rollup_keys[i]);
	buf_puts(&b, "WITH d AS (DELETE FROM vgc_rollup_deltas WHERE ctid = ANY (ARRAY("
		     "SELECT ctid FROM vgc_rollup_deltas WHERE " ROLLUP_FOLD_DAY
		     " = ANY ($2::timestamptz[]) LIMIT $1::bigint)) RETURNING *),");
	/* s: the deltas summed per hour and group, what every table adds up. */
	buf_printf(&b, " s AS (SELECT hour, %s", keys.data);
	for (int i = 0; i < ROLLUP_NMEASURES; i++)
		if (rollup_measure_stored(&rollup_measures[i]))
			buf_printf(&b, ", sum(%s) AS %s", rollup_measures[i].name,
				   rollup_measures[i].name);
	buf_printf(&b, " FROM d GROUP BY hour, %s)", keys.data);
	rollup_fold_sql_upsert(&b, "up", "cost_rollup_hourly", "hour", "hour", keys.data, true);
	rollup_fold_sql_upsert(&b, "dy", "cost_rollup_daily", "day", ROLLUP_FOLD_DAY, keys.data,
			       false);
	rollup_fold_sql_upsert(&b, "th", "cost_rollup_tenant_hourly", "hour", "hour",
			       "tenant_id, project", false);
	rollup_fold_sql_upsert(&b, "td", "cost_rollup_tenant_daily", "day", ROLLUP_FOLD_DAY,
			       "tenant_id, project", false);
	buf_puts(&b, " SELECT (SELECT count(*) FROM d),"
		     " (SELECT coalesce(sum(requests), 0) FROM d), (SELECT count(*) FROM up)");
	/* NULL on out of memory: rollup_fold_step reports it. */
	rollup_fold_sql = b.over || keys.over ? NULL : buf_steal(&b, NULL);
	buf_release(&b);
	buf_release(&keys);
}

bool rollup_fold_step(PGconn *conn, long long limit, bool wait, bool measure,
		      struct rollup_fold_report *rep, char *err, size_t errlen)
{
	char lim[24];
	const char *p[2] = { lim, NULL };
	long long waiting = -1; /* unknown unless measured */
	PGresult *res, *days = NULL;

	memset(rep, 0, sizeof(*rep));
	pthread_once(&rollup_fold_sql_once, rollup_fold_sql_build);
	if (!rollup_fold_sql) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	snprintf(lim, sizeof(lim), "%lld", limit);
	if (!db_exec(conn, "BEGIN", err, errlen))
		goto fail;
	if (measure) {
		if (!(res = db_query(conn, rollup_fold_lag_sql, 0, NULL, NULL, err, errlen)))
			goto fail;
		waiting = atoll(PQgetvalue(res, 0, 0));
		rep->lag_rows = atoll(PQgetvalue(res, 0, 1));
		rep->lag_seconds = atof(PQgetvalue(res, 0, 2));
		PQclear(res);
	}
	if (!(res = db_query(conn,
			     wait ? "SELECT pg_advisory_xact_lock(vgc_rollup_fold_lock_key()),"
				    " true"
				  : "SELECT pg_try_advisory_xact_lock(vgc_rollup_fold_lock_key())",
			     0, NULL, NULL, err, errlen)))
		goto fail;
	rep->skipped = strcmp(PQgetvalue(res, 0, PQnfields(res) - 1), "t") != 0;
	PQclear(res);
	if (rep->skipped || waiting == 0)
		return db_exec(conn, "COMMIT", err, errlen);
	/* The days' locks, and the triggers told the fold keeps the summaries. */
	if (!(res = db_query(conn, "SELECT vgc_rollup_fold_begin($1::bigint)", 1, p, NULL, err,
			     errlen)))
		goto fail;
	p[1] = PQgetvalue(res, 0, 0);
	days = res;
	if (!(res = db_query(conn, rollup_fold_sql, 2, p, NULL, err, errlen)))
		goto fail;
	PQclear(days);
	days = NULL;
	rep->deltas = atoll(PQgetvalue(res, 0, 0));
	rep->rows = atoll(PQgetvalue(res, 0, 1));
	rep->groups = atoll(PQgetvalue(res, 0, 2));
	PQclear(res);
	if (!db_exec(conn, "COMMIT", err, errlen))
		goto fail;
	/* Unmeasured: the days came from the first limit deltas, so a fold
	 * that took fewer left none of them behind. */
	if (waiting >= 0)
		rep->more = waiting > rep->deltas ? waiting - rep->deltas : 0;
	else
		rep->more = rep->deltas >= limit;
	return true;
fail:
	PQclear(days);
	db_rollback(conn);
	return false;
}

/* ---- the background pass inside `serve` (a task of tasks.c) ---------------- */

struct rollup_fold {
	struct pool *pool;
	const struct config *cfg; /* the server's live config, read on each pass */
	bool stopped;		  /* drained: the pass ends after the fold in flight */
	/* Loop thread: the figures /metrics shows. */
	bool measured; /* a fold has read the lag at least once */
	long long lag_rows;
	double lag_seconds;
	unsigned long long folds, skipped, rows, deltas;
};

struct rollup_fold_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct rollup_fold *f;
	struct task *t;
	long long limit;
	bool first; /* the pass's first fold: its lag is the pass's */
	bool ok;
	struct rollup_fold_report rep;
	char err[1024];
};

static bool rollup_fold_submit(struct rollup_fold *f, struct task *t, bool first);

/* Worker thread: one fold. */
static void rollup_fold_work(struct pool_job *pj, struct pool_worker *w)
{
	struct rollup_fold_job *job = (struct rollup_fold_job *)pj;
	PGconn *conn = pool_worker_conn(w, job->err, sizeof(job->err));

	if (!conn)
		return;
	job->ok = rollup_fold_step(conn, job->limit, false, job->first, &job->rep, job->err,
				   sizeof(job->err));
	if (!job->ok && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
}

/* Loop thread: fold again at once while deltas are left, else the pass ends. */
static void rollup_fold_done(struct pool_job *pj)
{
	struct rollup_fold_job *job = (struct rollup_fold_job *)pj;
	struct rollup_fold *f = job->f;
	struct task *t = job->t;
	bool ok = job->ok, more = job->ok && !job->rep.skipped && job->rep.more > 0;

	if (!job->ok) {
		log_warn("rollup-fold: %s (the deltas wait for the next pass)", job->err);
	} else {
		if (job->first) {
			f->lag_rows = job->rep.lag_rows;
			f->lag_seconds = job->rep.lag_seconds;
			f->measured = true;
		}
		if (job->rep.skipped)
			f->skipped++;
		else if (job->rep.deltas)
			f->folds++;
		f->rows += (unsigned long long)job->rep.rows;
		f->deltas += (unsigned long long)job->rep.deltas;
	}
	free(job);
	if (more && !f->stopped) {
		if (rollup_fold_submit(f, t, false))
			return;
		ok = false; /* the pool is saturated: the next pass goes on */
	}
	tasks_done(t, ok);
}

static bool rollup_fold_submit(struct rollup_fold *f, struct task *t, bool first)
{
	struct rollup_fold_job *job = calloc(1, sizeof(*job));

	if (!job)
		return false;
	job->job.work = rollup_fold_work;
	job->job.done = rollup_fold_done;
	job->f = f;
	job->t = t;
	job->first = first;
	job->limit = f->cfg->rollup_fold_max_deltas;
	if (!pool_submit(f->pool, &job->job)) {
		free(job);
		return false;
	}
	return true;
}

void rollup_fold_task_run(void *state, struct task *t)
{
	if (!rollup_fold_submit(state, t, true))
		tasks_done(t, false); /* out of memory, or the pool is saturated */
}

void *rollup_fold_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen)
{
	struct rollup_fold *f = calloc(1, sizeof(*f));

	(void)t;
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	f->pool = env->pool;
	f->cfg = env->cfg;
	return f;
}

void rollup_fold_task_stop(void *state)
{
	struct rollup_fold *f = state;

	f->stopped = true;
}

void rollup_fold_task_free(void *state)
{
	free(state);
}

void rollup_fold_render_metrics(void *state, struct buf *out)
{
	const struct rollup_fold *f = state;

	if (!f)
		return;
	buf_printf(out,
		   "# HELP vgcollector_rollup_folds_total Folds of the rollup deltas into the "
		   "hourly rollup by this collector, by result (skipped: another summariser held "
		   "the fold lock).\n"
		   "# TYPE vgcollector_rollup_folds_total counter\n"
		   "vgcollector_rollup_folds_total{result=\"folded\"} %llu\n"
		   "vgcollector_rollup_folds_total{result=\"skipped\"} %llu\n"
		   "# HELP vgcollector_rollup_folded_rows_total Cost rows whose sums this "
		   "collector folded into the hourly rollup.\n"
		   "# TYPE vgcollector_rollup_folded_rows_total counter\n"
		   "vgcollector_rollup_folded_rows_total %llu\n",
		   f->folds, f->skipped, f->rows);
	if (!f->measured)
		return;
	buf_printf(out,
		   "# HELP vgcollector_rollup_lag_rows Stored cost rows not yet folded into the "
		   "hourly rollup at the last fold pass (reads add them from the deltas: slower, "
		   "never wrong).\n"
		   "# TYPE vgcollector_rollup_lag_rows gauge\n"
		   "vgcollector_rollup_lag_rows %lld\n"
		   "# HELP vgcollector_rollup_lag_seconds How long the oldest unfolded delta had "
		   "waited at the last fold pass; 0 when none.\n"
		   "# TYPE vgcollector_rollup_lag_seconds gauge\n"
		   "vgcollector_rollup_lag_seconds %.3f\n",
		   f->lag_rows, f->lag_seconds);
}
