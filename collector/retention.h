/* Retention and partition upkeep for cost_rows: drop month partitions older
 * than retention_months (with their ids in cost_row_ids), create
 * partitions_ahead future ones. One process at a time, by advisory lock. */
#ifndef VGC_RETENTION_H
#define VGC_RETENTION_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct buf;
struct task;
struct task_env;

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

/* The periodic pass in `serve`, a row of the server's task list (tasks.h):
 * every retention_interval_s, one job on the pool, reading retention_months,
 * partitions_ahead and the roster's agent_ttl_s and agent_forget_after_s from
 * the live config each time. Loop thread only. */
void *retention_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen);
void retention_task_run(void *state, struct task *t);
void retention_task_free(void *state);

#endif
