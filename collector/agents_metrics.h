/* The roster's /metrics gauges: a row of the server's task list (tasks.h)
 * that queues a small query on the pool every agent_gauges_interval_s and
 * hands the result to metrics.c, so a scrape never waits for the database. */
#ifndef VGC_AGENTS_METRICS_H
#define VGC_AGENTS_METRICS_H

#include <stddef.h>

struct task;
struct task_env;

/* The task's hooks. The live config's agent_ttl_s is read on each pass. Loop
 * thread only; free after pool_free (a queued pass's done callback runs
 * inside it). */
void *agents_metrics_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen);
void agents_metrics_task_run(void *state, struct task *t);
void agents_metrics_task_free(void *state);

#endif
