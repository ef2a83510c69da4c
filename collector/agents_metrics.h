/* The roster's /metrics gauges: a timer on the loop queues a small query on
 * the pool every few seconds and hands the result to metrics.c, so a scrape
 * never waits for the database. One per process, like the HTTP front. */
#ifndef VGC_AGENTS_METRICS_H
#define VGC_AGENTS_METRICS_H

struct event_base;
struct pool;
struct config;

/* Starts the refresh (the first one at once). cfg is the server's live
 * config (agent_ttl_s is read on each refresh) and must outlive it. Loop
 * thread only. */
void agents_metrics_start(struct event_base *base, struct pool *pool, const struct config *cfg);
/* Stops the timer and frees it; call after pool_free (a queued refresh's
 * done callback runs inside it). */
void agents_metrics_free(void);

#endif
