/* vgcollector_period_late_rows_total on /metrics: rows that landed in closed
 * billing periods after their close, refreshed from the database off the loop
 * by a periodic task (server.c's task table, period_metrics_interval_s). */
#ifndef VGC_PERIODS_METRICS_H
#define VGC_PERIODS_METRICS_H

#include <stddef.h>

struct buf;
struct task;
struct task_env;

void *periods_metrics_task_new(const struct task_env *env, struct task *t, char *err,
			       size_t errlen);
void periods_metrics_task_run(void *state, struct task *t);
void periods_metrics_task_free(void *state);
/* Appends the counter (left out until the first refresh succeeded). Loop thread. */
void periods_metrics_render(struct buf *out);

#endif
