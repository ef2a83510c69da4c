/* The daily rollup's summariser, for `serve` (a timer and pool jobs) and for
 * `vgcollector rollup-daily`. The protocol that keeps every answer exact
 * while it runs is described at the top of schema/0004_rollup_daily.sql. */
#include "rollup_daily.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "pool.h"
#include "rollup_shape.h"
#include "rollup_sql.h"
#include "tasks.h"

/* Longer than a typical ingest transaction, shorter than deadlock_timeout
 * (1 s by default): the summariser gives up first when it waits on writers,
 * and the day is tried again on the next pass. */
#define ROLLUP_DAILY_LOCK_TIMEOUT "'500ms'"
#define ROLLUP_DAILY_DAY_LOCK                                                                      \
	"SELECT pg_advisory_xact_lock(vgc_rollup_day_lock_class(),"                                \
	" ($1::bigint / 86400)::int)"

/* The oldest due day no other summariser has taken, as epoch seconds. */
static const char rollup_daily_pick_sql[] =
	"SELECT extract(epoch FROM day)::bigint FROM vgc_rollup_dirty_days"
	" WHERE day + interval '24 hours' + make_interval(secs => $1::int) <= now()"
	" ORDER BY day LIMIT 1 FOR UPDATE SKIP LOCKED";

/* INSERT INTO cost_rollup_daily ... SELECT sums of the day's hours; built
 * once from the rollup shape (rollup_shape.c, the measures' one home). */
static char *rollup_daily_fill_sql(void)
{
	struct buf b, keys;
	char *out = NULL;

	buf_init(&b, 0);
	buf_init(&keys, 0);
	for (int i = 0; i < ROLLUP_NKEYS; i++)
		buf_printf(&keys, "%s%s", i ? ", " : "", rollup_keys[i]);
	buf_printf(&b, "INSERT INTO cost_rollup_daily (day, %s", keys.data);
	for (int i = 0; i < ROLLUP_NMEASURES; i++)
		if (rollup_measure_stored(&rollup_measures[i]))
			buf_printf(&b, ", %s", rollup_measures[i].name);
	buf_printf(&b, ") SELECT to_timestamp($1::bigint), %s", keys.data);
	for (int i = 0; i < ROLLUP_NMEASURES; i++)
		if (rollup_measure_stored(&rollup_measures[i]))
			buf_printf(&b, ", sum(%s)", rollup_measures[i].name);
	buf_printf(&b,
		   " FROM cost_rollup_hourly WHERE hour >= to_timestamp($1::bigint)"
		   " AND hour < to_timestamp($1::bigint) + interval '24 hours' GROUP BY %s",
		   keys.data);
	if (!b.over && !keys.over)
		out = buf_steal(&b, NULL);
	buf_release(&b);
	buf_release(&keys);
	return out;
}

/* Takes the day's lock exclusively. False with *timed_out when writers held
 * it past the lock timeout; false with err on any other failure. */
static bool rollup_daily_lock_day(PGconn *conn, const char *const *p, bool *timed_out, char *err,
				  size_t errlen)
{
	PGresult *res = PQexecParams(conn, ROLLUP_DAILY_DAY_LOCK, 1, NULL, p, NULL, NULL, 0);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	*timed_out = !ok && state && strcmp(state, "55P03") == 0; /* lock_not_available */
	if (!ok)
		db_result_error(conn, res, err, errlen);
	PQclear(res);
	return ok;
}

bool rollup_daily_step(PGconn *conn, int settle_s, bool *did, struct rollup_daily_report *rep,
		       char *err, size_t errlen)
{
	char settle[16], day[32];
	const char *p[1];
	char *fill = NULL;
	bool timed_out;
	PGresult *res;

	*did = false;
	snprintf(settle, sizeof(settle), "%d", settle_s);
	p[0] = settle;
	if (!db_exec(conn, "BEGIN", err, errlen) ||
	    !db_exec(conn, "SET LOCAL lock_timeout = " ROLLUP_DAILY_LOCK_TIMEOUT, err, errlen))
		goto fail;
	/* The day's row stays locked by us: another summariser skips it. */
	if (!(res = db_query(conn, rollup_daily_pick_sql, 1, p, NULL, err, errlen)))
		goto fail;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return db_exec(conn, "COMMIT", err, errlen);
	}
	snprintf(day, sizeof(day), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	p[0] = day;
	/* Waits for every writer of the day's hours to commit; later writers
	 * wait for our commit and list the day again. The statements below then
	 * see every hour those writers stored. */
	if (!rollup_daily_lock_day(conn, p, &timed_out, err, errlen)) {
		if (!timed_out)
			goto fail;
		db_rollback(conn);
		rep->busy++;
		return true;
	}
	if (!(res = db_query(conn,
			     "DELETE FROM vgc_rollup_dirty_days"
			     " WHERE day = to_timestamp($1::bigint)",
			     1, p, NULL, err, errlen)))
		goto fail;
	PQclear(res);
	if (!(res = db_query(conn,
			     "DELETE FROM cost_rollup_daily"
			     " WHERE day = to_timestamp($1::bigint)",
			     1, p, NULL, err, errlen)))
		goto fail;
	PQclear(res);
	if (!(fill = rollup_daily_fill_sql())) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (!(res = db_query(conn, fill, 1, p, NULL, err, errlen)))
		goto fail;
	rep->groups += atoll(PQcmdTuples(res));
	PQclear(res);
	free(fill);
	if (!db_exec(conn, "COMMIT", err, errlen))
		goto fail;
	rep->days++;
	*did = true;
	return true;
fail:
	free(fill);
	db_rollback(conn);
	return false;
}

bool rollup_daily_run(PGconn *conn, int settle_s, struct rollup_daily_report *rep, char *err,
		      size_t errlen)
{
	bool did = true;

	memset(rep, 0, sizeof(*rep));
	while (did && !rep->busy)
		if (!rollup_daily_step(conn, settle_s, &did, rep, err, errlen))
			return false;
	return true;
}

bool rollup_daily_pending(PGconn *conn, int settle_s, long long *dirty, long long *due, char *err,
			  size_t errlen)
{
	char settle[16];
	const char *p[1] = { settle };
	PGresult *res;

	snprintf(settle, sizeof(settle), "%d", settle_s);
	res = db_query(conn,
		       "SELECT count(*), count(*) FILTER (WHERE day + interval '24 hours'"
		       " + make_interval(secs => $1::int) <= now())"
		       " FROM vgc_rollup_dirty_days",
		       1, p, NULL, err, errlen);
	if (!res)
		return false;
	*dirty = atoll(PQgetvalue(res, 0, 0));
	*due = atoll(PQgetvalue(res, 0, 1));
	PQclear(res);
	return true;
}

/* ---- the background pass inside `serve` (a task of tasks.c) ---------------- */

struct rollup_daily {
	struct pool *pool;
	const struct config *cfg; /* the server's live config, read on each pass */
	bool stopped;		  /* drained: the pass ends after the day in flight */
};

struct rollup_daily_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct rollup_daily *d;
	struct task *t;
	int settle_s;
	bool ok, did;
	struct rollup_daily_report rep;
	char err[1024];
};

static bool rollup_daily_submit(struct rollup_daily *d, struct task *t);

/* Worker thread: one day. */
static void rollup_daily_work(struct pool_job *pj, struct pool_worker *w)
{
	struct rollup_daily_job *job = (struct rollup_daily_job *)pj;
	PGconn *conn = pool_worker_conn(w, job->err, sizeof(job->err));

	if (!conn)
		return;
	job->ok = rollup_daily_step(conn, job->settle_s, &job->did, &job->rep, job->err,
				    sizeof(job->err));
	if (!job->ok && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
}

/* Loop thread: the next day at once while days are due, else the pass ends. */
static void rollup_daily_done(struct pool_job *pj)
{
	struct rollup_daily_job *job = (struct rollup_daily_job *)pj;
	struct rollup_daily *d = job->d;
	struct task *t = job->t;
	bool ok = job->ok, more = job->ok && job->did;

	if (!job->ok)
		log_warn("rollup-daily: %s (retried in %d s)", job->err,
			 d->cfg->rollup_daily_interval_s);
	else if (job->rep.busy)
		log_debug("rollup-daily: a due day is being written; retried next pass");
	else if (job->did)
		log_debug("rollup-daily: summarised a day (%lld groups)", job->rep.groups);
	free(job);
	if (more && !d->stopped) {
		if (rollup_daily_submit(d, t))
			return;
		ok = false; /* the pool is saturated: the next pass goes on */
	}
	tasks_done(t, ok);
}

static bool rollup_daily_submit(struct rollup_daily *d, struct task *t)
{
	struct rollup_daily_job *job = calloc(1, sizeof(*job));

	if (!job)
		return false;
	job->job.work = rollup_daily_work;
	job->job.done = rollup_daily_done;
	job->d = d;
	job->t = t;
	job->settle_s = d->cfg->rollup_daily_settle_s;
	if (!pool_submit(d->pool, &job->job)) {
		free(job);
		return false;
	}
	return true;
}

void rollup_daily_task_run(void *state, struct task *t)
{
	if (!rollup_daily_submit(state, t))
		tasks_done(t, false); /* out of memory, or the pool is saturated */
}

void *rollup_daily_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen)
{
	struct rollup_daily *d = calloc(1, sizeof(*d));

	(void)t;
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->pool = env->pool;
	d->cfg = env->cfg;
	return d;
}

void rollup_daily_task_stop(void *state)
{
	struct rollup_daily *d = state;

	d->stopped = true;
}

void rollup_daily_task_free(void *state)
{
	free(state);
}
