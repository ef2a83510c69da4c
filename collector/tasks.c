/* The periodic task runner: one timer per task, armed interval seconds after
 * each pass ends (so passes of one task never overlap), a poke that brings the
 * next pass forward, and the figures /metrics shows for each task. */
#include "tasks.h"

#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "config.h"
#include "log.h"

/* The shortest wait between passes: an interval of 0 on a task that cannot be
 * turned off means "as often as the loop allows", not a busy loop. */
#define TASKS_MIN_INTERVAL_S 0.01

/* A task's state machine: IDLE with the timer armed (or not, when off) ->
 * RUNNING (run called, tasks_done not yet) -> IDLE. stopped is final. */
struct task {
	struct tasks *ts;
	const struct task_def *def;
	const struct config_param *interval; /* the row of def->interval_key */
	void *state;			     /* what def->new built */
	struct event *timer;
	bool running;	 /* between run and tasks_done */
	bool again;	 /* poked while running: one more pass right after */
	bool stopped;	 /* drained: no timer, no new pass */
	double next_at;	 /* monotonic time the timer fires; 0 when not armed */
	double since;	 /* monotonic end of the last pass (start, before any) */
	double started;	 /* monotonic start of the pass in flight */
	double last_end; /* Unix time the last pass ended; 0 before the first */
	double last_duration;
	unsigned long long runs, failures;
};

struct tasks {
	struct task_env env;
	struct task *list;
	int n;
};

struct tasks *tasks_new(const struct task_env *env)
{
	struct tasks *ts = calloc(1, sizeof(*ts));

	if (!ts)
		log_fatal("out of memory");
	ts->env = *env;
	return ts;
}

static void tasks_arm(struct task *t, double delay_s)
{
	struct timeval tv;

	if (t->stopped)
		return;
	if (delay_s < 0)
		delay_s = 0;
	tv.tv_sec = (time_t)delay_s;
	tv.tv_usec = (suseconds_t)((delay_s - floor(delay_s)) * 1e6);
	if (event_add(t->timer, &tv) == 0)
		t->next_at = clock_monotonic() + delay_s;
	else
		log_error("task %s: cannot arm its timer", t->def->name);
}

/* Arms the next pass interval seconds after the last one ended; leaves an
 * off task unarmed. */
static void tasks_schedule(struct task *t)
{
	double every = config_number(t->ts->env.cfg, t->interval);

	if (t->stopped || t->running)
		return;
	if (every <= 0 && t->def->zero_is_off) {
		event_del(t->timer);
		t->next_at = 0;
		return;
	}
	if (every < TASKS_MIN_INTERVAL_S)
		every = TASKS_MIN_INTERVAL_S;
	tasks_arm(t, t->since + every - clock_monotonic());
}

static void tasks_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct task *t = arg;

	t->next_at = 0;
	if (t->stopped)
		return;
	if (t->running) {
		t->again = true;
		return;
	}
	t->running = true;
	t->started = clock_monotonic();
	t->def->run(t->state, t);
}

void tasks_done(struct task *t, bool ok)
{
	double now = clock_monotonic();

	t->running = false;
	t->since = now;
	t->last_end = clock_epoch();
	t->last_duration = now - t->started;
	t->runs++;
	if (!ok)
		t->failures++;
	if (t->again && !t->stopped) {
		t->again = false;
		tasks_arm(t, 0);
	} else {
		tasks_schedule(t);
	}
}

void tasks_poke(struct task *t, double delay_s)
{
	if (!t || t->stopped)
		return;
	if (t->running) {
		t->again = true;
		return;
	}
	if (t->next_at == 0 || t->next_at > clock_monotonic() + delay_s)
		tasks_arm(t, delay_s);
}

bool tasks_start(struct tasks *ts, const struct task_def *defs, char *err, size_t errlen)
{
	int n = 0;

	while (defs[n].name)
		n++;
	if (!(ts->list = calloc((size_t)(n ? n : 1), sizeof(*ts->list)))) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	for (int i = 0; i < n; i++) {
		struct task *t = &ts->list[i];

		t->ts = ts;
		t->def = &defs[i];
		t->interval = config_find(defs[i].interval_key);
		if (!t->interval ||
		    (t->interval->type != CFG_INT && t->interval->type != CFG_DOUBLE)) {
			snprintf(err, errlen, "task %s: interval_key \"%s\" is not a number key",
				 defs[i].name, defs[i].interval_key);
			return false;
		}
		if (!(t->timer = event_new(ts->env.base, -1, 0, tasks_on_timer, t))) {
			snprintf(err, errlen, "task %s: out of memory", defs[i].name);
			return false;
		}
		if (!(t->state = defs[i].new(&ts->env, t, err, errlen))) {
			event_free(t->timer);
			t->timer = NULL;
			return false;
		}
		ts->n = i + 1;
		t->since = clock_monotonic();
		/* The first pass at once, unless the task is off. */
		if (config_number(ts->env.cfg, t->interval) > 0 || !defs[i].zero_is_off)
			tasks_arm(t, 0);
	}
	return true;
}

void *tasks_state(struct tasks *ts, const char *name)
{
	for (int i = 0; ts && i < ts->n; i++)
		if (strcmp(ts->list[i].def->name, name) == 0)
			return ts->list[i].state;
	return NULL;
}

void tasks_reschedule(struct tasks *ts)
{
	for (int i = 0; ts && i < ts->n; i++)
		tasks_schedule(&ts->list[i]);
}

void tasks_stop(struct tasks *ts)
{
	for (int i = 0; ts && i < ts->n; i++) {
		struct task *t = &ts->list[i];

		t->stopped = true;
		t->again = false;
		event_del(t->timer);
		t->next_at = 0;
		if (t->def->stop)
			t->def->stop(t->state);
		log_info("task %s stopped%s", t->def->name,
			 t->running ? " (its pass in flight finishes)" : "");
	}
}

void tasks_free(struct tasks *ts)
{
	if (!ts)
		return;
	for (int i = 0; i < ts->n; i++) {
		struct task *t = &ts->list[i];

		if (t->def->free)
			t->def->free(t->state);
		if (t->timer)
			event_free(t->timer);
	}
	free(ts->list);
	free(ts);
}

void tasks_render_metrics(const struct tasks *ts, struct buf *out)
{
	if (!ts)
		return;
	buf_puts(out, "# HELP vgcollector_task_last_run_timestamp_seconds Unix time the "
		      "periodic task's last pass ended (left out before its first).\n"
		      "# TYPE vgcollector_task_last_run_timestamp_seconds gauge\n");
	for (int i = 0; i < ts->n; i++)
		if (ts->list[i].runs)
			buf_printf(
				out,
				"vgcollector_task_last_run_timestamp_seconds{task=\"%s\"} %.3f\n",
				ts->list[i].def->name, ts->list[i].last_end);
	buf_puts(out, "# HELP vgcollector_task_duration_seconds How long the periodic task's "
		      "last pass took.\n"
		      "# TYPE vgcollector_task_duration_seconds gauge\n");
	for (int i = 0; i < ts->n; i++)
		if (ts->list[i].runs)
			buf_printf(out, "vgcollector_task_duration_seconds{task=\"%s\"} %.6f\n",
				   ts->list[i].def->name, ts->list[i].last_duration);
	buf_puts(out, "# HELP vgcollector_task_runs_total Passes of the periodic task that "
		      "ended.\n# TYPE vgcollector_task_runs_total counter\n");
	for (int i = 0; i < ts->n; i++)
		buf_printf(out, "vgcollector_task_runs_total{task=\"%s\"} %llu\n",
			   ts->list[i].def->name, ts->list[i].runs);
	buf_puts(out, "# HELP vgcollector_task_failures_total Passes of the periodic task that "
		      "failed (a database error, or the pool too busy to take it).\n"
		      "# TYPE vgcollector_task_failures_total counter\n");
	for (int i = 0; i < ts->n; i++)
		buf_printf(out, "vgcollector_task_failures_total{task=\"%s\"} %llu\n",
			   ts->list[i].def->name, ts->list[i].failures);
}
