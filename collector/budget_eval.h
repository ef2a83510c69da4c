/* Budget evaluation and alert delivery for `serve`. On the loop: a timer
 * (budget_check_s) and a cheap "something was committed" mark from ingest
 * start an evaluation job on the pool, which claims alerts in budget_alerts
 * (INSERT ... ON CONFLICT DO NOTHING: one replica wins each) and leases due
 * deliveries (FOR UPDATE SKIP LOCKED); the loop then POSTs them (webhook.c)
 * and records each outcome with another job. Owns the gauges /metrics shows. */
#ifndef VGC_BUDGET_EVAL_H
#define VGC_BUDGET_EVAL_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct config;
struct event_base;
struct pool;
struct budget_eval;

/* Starts the timer. cfg is the server's live config (read at each use, so
 * reloads apply) and must outlive the result. Loop thread only. */
struct budget_eval *budget_eval_new(struct event_base *base, struct pool *pool,
				    const struct config *cfg, char *err, size_t errlen);
/* Stops evaluating and starting deliveries (draining); running ones go on. */
void budget_eval_stop(struct budget_eval *be);
/* Cancels running deliveries (their leases expire, so another replica or the
 * next start retries them). Free after pool_free. */
void budget_eval_free(struct budget_eval *be);

/* Ingest committed rows: evaluate within budget_eval_delay_s. Costs a flag
 * test and at most one event_add; nothing when no budget exists. */
void budget_eval_note_commit(struct budget_eval *be);

/* Appends the budget gauges (as of the last evaluation) in Prometheus text. */
void budget_eval_render_metrics(const struct budget_eval *be, struct buf *out);

#endif
