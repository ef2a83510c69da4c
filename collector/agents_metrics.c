/* Refreshes the roster gauges of /metrics (vgcollector_agents{status},
 * vgcollector_agent_sink_dropped_rows, vgcollector_agent_sink_backlog_rows)
 * from the agents table, off the loop. A failed refresh keeps the last
 * values; until the first one succeeds the gauges are left out. */
#include "agents_metrics.h"

#include <event2/event.h>
#include <stdlib.h>

#include "agents_store.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"

/* Often enough for a 15 s scrape, rarely enough to cost nothing. */
#define AGENTS_METRICS_INTERVAL_S 5

struct agents_metrics_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	int ttl_s;
	bool ok;
	struct agents_gauges g;
	char err[512];
};

/* Loop-thread state. */
static struct pool *agents_metrics_pool;
static const struct config *agents_metrics_cfg;
static struct event *agents_metrics_timer;
static bool agents_metrics_busy;

/* Worker thread. */
static void agents_metrics_work(struct pool_job *pj, struct pool_worker *w)
{
	struct agents_metrics_job *job = (struct agents_metrics_job *)pj;
	PGconn *conn = pool_worker_conn(w, job->err, sizeof(job->err));

	if (!conn)
		return;
	job->ok = agents_store_gauges(conn, job->ttl_s, &job->g, job->err, sizeof(job->err));
	if (!job->ok && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
}

/* Loop thread. */
static void agents_metrics_done(struct pool_job *pj)
{
	struct agents_metrics_job *job = (struct agents_metrics_job *)pj;

	agents_metrics_busy = false;
	if (job->ok)
		metrics_agents_set(job->g.idle, job->g.busy, job->g.offline, job->g.dropped,
				   job->g.backlog);
	else
		log_debug("roster gauges not refreshed: %s", job->err);
	free(job);
}

static void agents_metrics_tick(evutil_socket_t fd, short what, void *arg)
{
	struct agents_metrics_job *job;

	if (agents_metrics_busy)
		return;
	if (!(job = calloc(1, sizeof(*job))))
		return; /* the next tick tries again */
	job->job.work = agents_metrics_work;
	job->job.done = agents_metrics_done;
	job->ttl_s = agents_metrics_cfg->agent_ttl_s;
	if (!pool_submit(agents_metrics_pool, &job->job)) {
		free(job);
		return;
	}
	agents_metrics_busy = true;
}

void agents_metrics_start(struct event_base *base, struct pool *pool, const struct config *cfg)
{
	struct timeval every = { AGENTS_METRICS_INTERVAL_S, 0 };

	agents_metrics_pool = pool;
	agents_metrics_cfg = cfg;
	agents_metrics_timer = event_new(base, -1, EV_PERSIST, agents_metrics_tick, NULL);
	if (!agents_metrics_timer || event_add(agents_metrics_timer, &every) != 0)
		log_fatal("cannot start the roster gauge timer");
	agents_metrics_tick(-1, 0, NULL);
}

void agents_metrics_free(void)
{
	if (agents_metrics_timer)
		event_free(agents_metrics_timer);
	agents_metrics_timer = NULL;
}
