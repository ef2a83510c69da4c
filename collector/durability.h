/* Whether a commit the collector acknowledges survives losing the primary:
 * a check, queued on the pool at startup, on reload and every half minute,
 * that the database has a synchronous standby. It warns when not, and
 * /metrics carries the answer. Loop thread only. */
#ifndef VGC_DURABILITY_H
#define VGC_DURABILITY_H

struct buf;
struct event_base;
struct pool;
struct durability;

/* Starts the checks (the first at once). pool must outlive it. NULL only
 * when out of memory. The caller owns the result (durability_free). */
struct durability *durability_new(struct event_base *base, struct pool *pool);
/* Queues a check now (reload) that warns again if there is still no
 * synchronous standby. */
void durability_recheck(struct durability *d);
/* vgcollector_db_synchronous_standby, once a check has answered. */
void durability_render_metrics(const struct durability *d, struct buf *out);
/* Call after pool_free: a queued check's done callback runs inside it. */
void durability_free(struct durability *d);

#endif
