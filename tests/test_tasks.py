"""The periodic task runner: retention, the daily summariser, budget
evaluation and the roster's gauges are rows of one list. /metrics shows each
task's last pass, its duration and its failures; drain stops every one of
them; reload re-reads their intervals."""

import re
import signal

from conftest import metrics_map, wait_until

TASKS = ("retention", "rollup_daily", "budget_eval", "agent_gauges")


def task_metrics(c):
    return metrics_map(c.get("/metrics").text)


def test_metrics_show_each_task_after_it_runs(db, collectors):
    """Every task runs once at start; /metrics then has its last run time,
    the duration of that pass, and its runs and failures counters."""
    c = collectors(db)

    def all_ran():
        m = task_metrics(c)
        return all(f'vgcollector_task_last_run_timestamp_seconds{{task="{t}"}}' in m
                   for t in TASKS) and m

    m = wait_until(all_ran, 30, "every task's first pass in /metrics")
    for t in TASKS:
        assert m[f'vgcollector_task_last_run_timestamp_seconds{{task="{t}"}}'] > 1.7e9, t
        assert m[f'vgcollector_task_duration_seconds{{task="{t}"}}'] >= 0, t
        assert m[f'vgcollector_task_runs_total{{task="{t}"}}'] >= 1, t
        assert m[f'vgcollector_task_failures_total{{task="{t}"}}'] == 0, t


def test_drain_stops_all_four_tasks_and_exits_cleanly(db, collectors):
    """Before the runner, SIGTERM stopped retention, the summariser and
    budget evaluation, but not the roster's gauge timer. Now the drain walks
    the one list: each task logs that it stopped, and the process exits 0
    (leak-free under ASan: stop() fails on a sanitizer report)."""
    c = collectors(db, "--agent-gauges-interval-s", "1")
    wait_until(lambda: 'vgcollector_task_runs_total{task="agent_gauges"}' in task_metrics(c)
               and task_metrics(c)['vgcollector_task_runs_total{task="agent_gauges"}'] >= 1,
               30, "the roster gauges' first pass")
    assert c.stop(signal.SIGTERM) == 0
    out = c.output()
    for t in TASKS:
        assert re.search(rf"task {t} stopped", out), f"{t} not stopped:\n{out[-3000:]}"


def test_reload_turns_a_task_on_through_its_interval_key(db, collectors):
    """A task whose interval is 0 is off and never runs; a SIGHUP that sets
    the interval starts it, without a restart."""
    c = collectors(db, config_text="agent_gauges_interval_s = 0\n")
    wait_until(lambda: 'vgcollector_task_last_run_timestamp_seconds{task="retention"}'
               in task_metrics(c), 30, "retention's first pass")
    m = task_metrics(c)
    assert 'vgcollector_task_last_run_timestamp_seconds{task="agent_gauges"}' not in m
    assert m['vgcollector_task_runs_total{task="agent_gauges"}'] == 0
    with open(c.config_path, "w") as f:
        f.write("agent_gauges_interval_s = 1\n")
    c.signal(signal.SIGHUP)
    wait_until(lambda: task_metrics(c).get('vgcollector_task_runs_total{task="agent_gauges"}',
                                           0) >= 2,
               30, "the roster gauges running after the reload")
