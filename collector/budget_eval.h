/* Budget evaluation and alert delivery for `serve`. On the loop: the task
 * runner (budget_check_s) and a cheap "something was committed" mark from ingest
 * start an evaluation job on the pool, which claims alerts in budget_alerts
 * (INSERT ... ON CONFLICT DO NOTHING: one replica wins each) and leases due
 * deliveries (FOR UPDATE SKIP LOCKED); the loop then POSTs them (webhook.c)
 * and records each outcome with another job. Owns the gauges /metrics shows. */
#ifndef VGC_BUDGET_EVAL_H
#define VGC_BUDGET_EVAL_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct budget_eval;
struct task;
struct task_env;

/* Budget evaluation is a row of the server's task list (tasks.h): a pass
 * every budget_check_s, and one within budget_eval_delay_s of a commit.
 * Reads the live config at each use. Stopping (drain) starts no more
 * deliveries; running ones go on. Free cancels running deliveries (their
 * leases expire, so another replica or the next start retries them); it runs
 * after pool_free. Loop thread only. */
void *budget_eval_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen);
void budget_eval_task_run(void *state, struct task *t);
void budget_eval_task_stop(void *state);
void budget_eval_task_free(void *state);

/* Ingest committed rows: evaluate within budget_eval_delay_s. Costs a flag
 * test and a tasks_poke; nothing when no budget exists. */
void budget_eval_note_commit(struct budget_eval *be);

/* Appends the budget gauges (as of the last evaluation) in Prometheus text. */
void budget_eval_render_metrics(const struct budget_eval *be, struct buf *out);

#endif
