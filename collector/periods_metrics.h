/* vgcollector_period_late_rows_total on /metrics: rows that landed in closed
 * billing periods after their close, refreshed from the database off the loop. */
#ifndef VGC_PERIODS_METRICS_H
#define VGC_PERIODS_METRICS_H

struct event_base;
struct pool;
struct buf;

void periods_metrics_start(struct event_base *base, struct pool *pool);
/* Appends the counter (left out until the first refresh succeeded). Loop thread. */
void periods_metrics_render(struct buf *out);
void periods_metrics_free(void);

#endif
