/* Retention and partition upkeep for cost_rows: drop month partitions older
 * than retention_months (with their ids in cost_row_ids), create
 * partitions_ahead future ones. One process at a time, by advisory lock. */
#ifndef VGC_RETENTION_H
#define VGC_RETENTION_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct buf;
struct config;
struct event_base;
struct pool;
struct retention;

/* What one pass did (or, with dry_run, would do). */
struct retention_report {
	bool locked_out;	    /* another process held the lock at a drop: the pass
				     * stopped there (no drop or creation after it) */
	int dropped;		    /* partitions dropped */
	long long ids_deleted;	    /* rows removed from cost_row_ids */
	int created;		    /* future partitions created */
	long long agents_forgotten; /* roster workers removed (schema/0006_agents.sql) */
};

/* One pass on conn (blocking). retention_months 0 keeps every partition.
 * Workers of the roster offline for longer than agent_forget_after_s (last
 * seen more than agent_ttl_s + agent_forget_after_s ago) are removed too.
 * Appends one human-readable line per action to out. On failure the
 * transaction is rolled back (which releases its lock) and err says why; partitions
 * dropped before the failure stay dropped. */
bool retention_run(PGconn *conn, int retention_months, int partitions_ahead, int agent_ttl_s,
		   int agent_forget_after_s, bool dry_run, struct buf *out,
		   struct retention_report *rep, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Starts the periodic pass for `serve` on base: once now and then every hour,
 * as a job on pool, reading retention_months, partitions_ahead and the
 * roster's agent_ttl_s and agent_forget_after_s from cfg
 * each time (all reloadable, so cfg is the server's live config and must
 * outlive the result). Loop thread only. Free after pool_free. */
struct retention *retention_new(struct event_base *base, struct pool *pool,
				const struct config *cfg);
/* Stops the timer; a pass already queued still completes. */
void retention_stop(struct retention *r);
void retention_free(struct retention *r);

#endif
