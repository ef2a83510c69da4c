/* Refreshes the roster gauges of /metrics (vgcollector_agents{status},
 * vgcollector_agent_sink_dropped_rows, vgcollector_agent_sink_backlog_rows)
 * from the agents table, off the loop. A failed refresh keeps the last
 * values; until the first one succeeds the gauges are left out. */
#include "agents_metrics.h"

#include <stdio.h>
#include <stdlib.h>

#include "agents_store.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "tasks.h"

struct agents_metrics {
	struct pool *pool;
	const struct config *cfg; /* the server's live config */
};

struct agents_metrics_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct task *t;
	int ttl_s;
	bool ok;
	struct agents_gauges g;
	char err[512];
};

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

	if (job->ok)
		metrics_agents_set(job->g.idle, job->g.busy, job->g.offline, job->g.dropped,
				   job->g.backlog);
	else
		log_debug("roster gauges not refreshed: %s", job->err);
	tasks_done(job->t, job->ok);
	free(job);
}

void agents_metrics_task_run(void *state, struct task *t)
{
	struct agents_metrics *am = state;
	struct agents_metrics_job *job = calloc(1, sizeof(*job));

	if (!job) {
		tasks_done(t, false); /* the next pass tries again */
		return;
	}
	job->job.work = agents_metrics_work;
	job->job.done = agents_metrics_done;
	job->t = t;
	job->ttl_s = am->cfg->agent_ttl_s;
	if (!pool_submit(am->pool, &job->job)) {
		free(job);
		tasks_done(t, false);
	}
}

void *agents_metrics_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen)
{
	struct agents_metrics *am = calloc(1, sizeof(*am));

	(void)t;
	if (!am) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	am->pool = env->pool;
	am->cfg = env->cfg;
	return am;
}

void agents_metrics_task_free(void *state)
{
	free(state);
}
