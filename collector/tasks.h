/* The server's periodic work as rows: each task has a name, an interval read
 * from a config key, and run/stop/free hooks. The runner owns the timers,
 * so drain and reload walk one list, and /metrics shows each task's last
 * pass, its duration and its failures. Loop thread only. */
#ifndef VGC_TASKS_H
#define VGC_TASKS_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct config;
struct event_base;
struct pool;
struct task;
struct tasks;

/* What a task's constructor may keep: the loop, the pool its jobs run on, and
 * the server's live config (read at each use so reloads apply; it outlives
 * every task). */
struct task_env {
	struct event_base *base;
	struct pool *pool;
	const struct config *cfg;
};

/* One periodic task.
 *
 * Contract: the runner calls run at start and then interval_key seconds after
 * each pass ends. run starts one pass and must call tasks_done(t, ok) exactly
 * once when that pass ends, before returning or later from a pool job's done
 * callback. stop (drain) ends the pass in flight as early as it safely can
 * and starts nothing new; a pass still running calls tasks_done as usual.
 * free runs after the pool is freed (a queued job's done callback may still
 * use the state until then). */
struct task_def {
	const char *name;	  /* the metrics label and the log's name for it */
	const char *interval_key; /* a CFG_INT or CFG_DOUBLE key: seconds between passes */
	bool zero_is_off;	  /* interval 0 turns the task off (else: as often as 10 ms) */
	/* Builds the task's state; NULL with err on failure. t is its handle
	 * (for tasks_poke). */
	void *(*new)(const struct task_env *env, struct task *t, char *err, size_t errlen);
	void (*run)(void *state, struct task *t);
	void (*stop)(void *state);
	void (*free)(void *state);
};

/* An empty list; free with tasks_free. Startup only: fatal when out of memory. */
struct tasks *tasks_new(const struct task_env *env);
/* Builds each row of defs (ending with a NULL name), in order, and schedules
 * its first pass at once. defs must outlive the list. False with err when a
 * constructor fails or an interval_key is not a number key. */
bool tasks_start(struct tasks *ts, const struct task_def *defs, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* The state of the task named name (for the modules that also serve requests,
 * like budget evaluation); NULL when there is none. */
void *tasks_state(struct tasks *ts, const char *name);

/* The pass run started has ended. */
void tasks_done(struct task *t, bool ok);
/* Runs t's next pass within delay_s seconds (sooner if already due); when a
 * pass is running, one more runs right after it. Ignored once stopped. */
void tasks_poke(struct task *t, double delay_s);

/* Reload: re-reads each interval and re-arms the timers of tasks waiting for
 * their next pass (a shorter interval takes effect at once, 0 stops an
 * off-able task and a non-zero one starts it). */
void tasks_reschedule(struct tasks *ts);
/* Drain: cancels every timer and calls each task's stop. Logs one line per
 * task ("task NAME stopped"). */
void tasks_stop(struct tasks *ts);
/* Frees each task's state (its free hook) and the list. After pool_free. */
void tasks_free(struct tasks *ts);

/* Appends vgcollector_task_* (last run, duration, failures) per task. */
void tasks_render_metrics(const struct tasks *ts, struct buf *out);

#endif
