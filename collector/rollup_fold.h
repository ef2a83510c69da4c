/* The rollup's summariser: folds the sums each ingest transaction appended
 * to vgc_rollup_deltas into the hourly, daily and narrow rollups, outside
 * ingest (see schema/0022_rollup_deltas.sql and 0026), as a task of `serve` and as
 * `vgcollector rollup-fold`; and the lag gauges /metrics shows. */
#ifndef VGC_ROLLUP_FOLD_H
#define VGC_ROLLUP_FOLD_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct buf;
struct task;
struct task_env;

/* What one fold did, and what was waiting when it began. */
struct rollup_fold_report {
	bool skipped;	    /* another summariser held the fold lock */
	long long deltas;   /* delta rows folded */
	long long rows;	    /* cost rows they summed (their requests) */
	long long groups;   /* hourly rows inserted or updated */
	long long more;	    /* delta rows left, or 1 when unmeasured and maybe some */
	long long lag_rows; /* cost rows waiting when the fold began */
	double lag_seconds; /* age of the oldest waiting delta then; 0: none */
};

/* One fold: under the fold lock (waited for when wait, else the fold is
 * skipped while another summariser holds it), takes at most limit delta rows,
 * deletes them and adds their sums to every rollup table in one
 * transaction. With measure it first reads what is waiting (the lag; a scan
 * of every delta, so once per pass, not once per fold of a long backlog).
 * Blocking; on failure the transaction is rolled back (the deltas
 * stay for the next fold) and err says why. */
bool rollup_fold_step(PGconn *conn, long long limit, bool wait, bool measure,
		      struct rollup_fold_report *rep, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The background pass in `serve`, a row of the server's task list (tasks.h):
 * every rollup_fold_s (0: off), folds until nothing is left or another
 * summariser holds the lock, and records the lag for /metrics. */
void *rollup_fold_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen);
void rollup_fold_task_run(void *state, struct task *t);
void rollup_fold_task_stop(void *state);
void rollup_fold_task_free(void *state);

/* vgcollector_rollup_lag_rows and _seconds, and the fold counters. state is
 * the task's (tasks_state(..., "rollup_fold")); NULL renders nothing. */
void rollup_fold_render_metrics(void *state, struct buf *out);

#endif
