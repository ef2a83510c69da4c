/* The daily rollup's summariser: folds closed days listed in
 * vgc_rollup_dirty_days from cost_rollup_hourly into cost_rollup_daily, one
 * day per transaction, outside ingest (see schema/0004_rollup_daily.sql). */
#ifndef VGC_ROLLUP_DAILY_H
#define VGC_ROLLUP_DAILY_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct task;
struct task_env;

/* What one or more steps did. */
struct rollup_daily_report {
	int days;	  /* days summarised */
	long long groups; /* daily rows written for them */
	int busy;	  /* due days skipped: writers held them past the lock timeout */
};

/* Summarises the oldest due day no other summariser holds: a listed day
 * that ended at least settle_s seconds ago. *did is false when no day was
 * due. Safe with other summarisers at once (they take different days or wait
 * on the day's lock). Blocking; on failure the transaction is rolled back
 * and err says why. */
bool rollup_daily_step(PGconn *conn, int settle_s, bool *did, struct rollup_daily_report *rep,
		       char *err, size_t errlen) __attribute__((warn_unused_result));

/* Steps until no day is due. */
bool rollup_daily_run(PGconn *conn, int settle_s, struct rollup_daily_report *rep, char *err,
		      size_t errlen) __attribute__((warn_unused_result));

/* Listed days in all (*dirty) and how many of them are due now (*due). */
bool rollup_daily_pending(PGconn *conn, int settle_s, long long *dirty, long long *due, char *err,
			  size_t errlen) __attribute__((warn_unused_result));

/* The background pass in `serve`, a row of the server's task list (tasks.h):
 * every rollup_daily_interval_s (0: off), one pool job per day until none is
 * due, reading the live config on each pass. Stopping ends the pass after the
 * day in flight. Loop thread only. */
void *rollup_daily_task_new(const struct task_env *env, struct task *t, char *err, size_t errlen);
void rollup_daily_task_run(void *state, struct task *t);
void rollup_daily_task_stop(void *state);
void rollup_daily_task_free(void *state);

#endif
