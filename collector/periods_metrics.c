/* Refreshes the counter vgcollector_period_late_rows_total from the closed billing
 * periods (periods_late_rows), off the loop, as the task "period_late_rows". A
 * failed refresh keeps the last value; until the first one succeeds the metric
 * is left out. */
#include "periods_metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "log.h"
#include "periods.h"
#include "pool.h"
#include "tasks.h"

struct periods_metrics_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct task *t;
	bool ok;
	long long late;
	char err[512];
};

/* Loop thread: the last value read, shown by periods_metrics_render. */
static bool periods_metrics_known;
static long long periods_metrics_late;

/* Worker thread. */
static void periods_metrics_work(struct pool_job *pj, struct pool_worker *w)
{
	struct periods_metrics_job *job = (struct periods_metrics_job *)pj;
	PGconn *conn = pool_worker_conn(w, job->err, sizeof(job->err));

	if (!conn)
		return;
	job->ok = periods_late_rows(conn, &job->late, job->err, sizeof(job->err));
	if (!job->ok && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
}

/* Loop thread. */
static void periods_metrics_done(struct pool_job *pj)
{
	struct periods_metrics_job *job = (struct periods_metrics_job *)pj;

	if (job->ok) {
		periods_metrics_late = job->late;
		periods_metrics_known = true;
	} else {
		log_debug("late-row counter not refreshed: %s", job->err);
	}
	tasks_done(job->t, job->ok);
	free(job);
}

void periods_metrics_task_run(void *state, struct task *t)
{
	struct pool *pool = state;
	struct periods_metrics_job *job = calloc(1, sizeof(*job));

	if (!job) {
		tasks_done(t, false); /* the next pass tries again */
		return;
	}
	job->job.work = periods_metrics_work;
	job->job.done = periods_metrics_done;
	job->t = t;
	if (!pool_submit(pool, &job->job)) {
		free(job);
		tasks_done(t, false);
	}
}

void *periods_metrics_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen)
{
	(void)t;
	(void)err;
	(void)errlen;
	periods_metrics_known = false;
	return env->pool; /* the task's state is the pool it reads through */
}

void periods_metrics_task_free(void *state)
{
	(void)state; /* the pool belongs to the server */
}

void periods_metrics_render(struct buf *out)
{
	if (!periods_metrics_known)
		return;
	buf_printf(out,
		   "# HELP vgcollector_period_late_rows_total Rows that landed in closed billing "
		   "periods after their close (billed as corrections in the first open month); "
		   "read from the database, so it survives restarts and drops when a month is "
		   "reopened.\n"
		   "# TYPE vgcollector_period_late_rows_total counter\n"
		   "vgcollector_period_late_rows_total %lld\n",
		   periods_metrics_late);
}
