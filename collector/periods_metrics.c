/* Refreshes the counter vgcollector_period_late_rows_total from the closed billing
 * periods (periods_late_rows), off the loop. A failed refresh keeps the last
 * value; until the first one succeeds the metric is left out. */
#include "periods_metrics.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>

#include "buf.h"
#include "log.h"
#include "periods.h"
#include "pool.h"

/* Late rows are rare and the read sums the closed months' rollups. */
#define PERIODS_METRICS_INTERVAL_S 10

struct periods_metrics_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	bool ok;
	long long late;
	char err[512];
};

/* Loop-thread state. */
static struct pool *periods_metrics_pool;
static struct event *periods_metrics_timer;
static bool periods_metrics_busy, periods_metrics_known;
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

	periods_metrics_busy = false;
	if (job->ok) {
		periods_metrics_late = job->late;
		periods_metrics_known = true;
	} else {
		log_debug("late-row counter not refreshed: %s", job->err);
	}
	free(job);
}

static void periods_metrics_tick(evutil_socket_t fd, short what, void *arg)
{
	struct periods_metrics_job *job;

	(void)fd;
	(void)what;
	(void)arg;
	if (periods_metrics_busy || !(job = calloc(1, sizeof(*job))))
		return; /* the next tick tries again */
	job->job.work = periods_metrics_work;
	job->job.done = periods_metrics_done;
	if (!pool_submit(periods_metrics_pool, &job->job)) {
		free(job);
		return;
	}
	periods_metrics_busy = true;
}

void periods_metrics_start(struct event_base *base, struct pool *pool)
{
	struct timeval every = { PERIODS_METRICS_INTERVAL_S, 0 };

	periods_metrics_pool = pool;
	periods_metrics_timer = event_new(base, -1, EV_PERSIST, periods_metrics_tick, NULL);
	if (!periods_metrics_timer || event_add(periods_metrics_timer, &every) != 0)
		log_fatal("cannot start the late-row counter timer");
	periods_metrics_tick(-1, 0, NULL);
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

void periods_metrics_free(void)
{
	if (periods_metrics_timer)
		event_free(periods_metrics_timer);
	periods_metrics_timer = NULL;
}
