#!/usr/bin/env python3
"""make bench-sink: the cost of vgsink_record (median, p99) with 1, 4 and 8
recording threads while the sink sends to a real collector, the memory of
1,000,000 queued rows (bytes per row), and how fast one sink delivers over HTTP and HTTPS.
Environment: BENCH_ROWS (calls per round, default 200000), BENCH_ROUNDS (rounds
pooled for each thread count, default 3), BENCH_DELIVERY_ROWS (rows per delivery
run, default 50000), BENCH_PY_ROWS (the Python line's calls, default 100000)."""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from conftest import BUILD, Collector, Db, PgCluster, make_certs  # noqa: E402
from bench_ingest import machine  # noqa: E402

ROWS = os.environ.get("BENCH_ROWS", "200000")
ROUNDS = os.environ.get("BENCH_ROUNDS", "3")
DELIVERY_ROWS = int(os.environ.get("BENCH_DELIVERY_ROWS", "50000"))
PY_ROWS = int(os.environ.get("BENCH_PY_ROWS", "100000"))


def delivery(db, key, scheme, url, cpus, extra=()):
    """One recording thread, one sink: rows recorded at once, then flushed.
    The time runs from the start of vgsink-sim until every row is answered."""
    db.query("TRUNCATE cost_rows, cost_row_ids, cost_rollup_hourly")
    t = time.monotonic()
    r = subprocess.run([os.path.join(BUILD, "vgsink-sim"), "--url", url, "--key", key,
                        "--threads", "1", "--rows", str(DELIVERY_ROWS), *extra],
                       capture_output=True, text=True, timeout=1200,
                       preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    elapsed = time.monotonic() - t
    st = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    stored = db.scalar("SELECT count(*) FROM cost_rows")
    if r.returncode != 0 or st.get("sent") != DELIVERY_ROWS or stored != DELIVERY_ROWS:
        print(f"delivery over {scheme}: FAILED (exit {r.returncode}, stats {st}, "
              f"{stored} stored)\n{r.stderr}")
        return 1
    print(f"delivery over {scheme:5}: {DELIVERY_ROWS} rows in {elapsed:.2f} s, "
          f"{DELIVERY_ROWS / elapsed:,.0f} rows/s, one sink, 500-row batches, all stored")
    return 0


def python_line(url, key, cpus):
    """The Python package's log_request against asdict()+append, same run."""
    env = dict(os.environ, PYTHONPATH=os.path.join(BUILD, "python"))
    for mode in ({}, {"VGSINK_CTYPES_ONLY": "1"}):
        r = subprocess.run(["/usr/bin/python3", os.path.join(os.path.dirname(__file__),
                                                             "bench_pysink.py"),
                            url, key, str(PY_ROWS)], capture_output=True, text=True,
                           timeout=1200, env=dict(env, **mode),
                           preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr[-2000:])
        if r.returncode != 0:
            return 1
    return 0


def main():
    print(f"bench-sink: {ROWS} vgsink_record calls per round, {ROUNDS} rounds pooled")
    print(f"machine: {machine()}")
    # The collector and PostgreSQL stand for another machine: on the last CPU,
    # and the sink (its recording threads and sender) on the others, so the
    # collector's work on the rows is not counted as the sink's cost.
    cpus = sorted(os.sched_getaffinity(0))
    sink_cpus = set(cpus[:-1]) if len(cpus) > 1 else set(cpus)
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[-1]})
        print(f"CPUs: sink on {sorted(sink_cpus)}, collector and PostgreSQL on {cpus[-1]}")
    cluster = PgCluster().start()
    try:
        db = Db(cluster, cluster.createdb()).migrate()
        key = db.create_key("ingest")
        collector = Collector(db, args=("--rate-limit-rps", "0"))
        r = subprocess.run([os.path.join(BUILD, "vgsink-bench"), collector.url, key, ROWS,
                            "1000000", ROUNDS],
                           capture_output=True, text=True, timeout=1200,
                           preexec_fn=lambda: os.sched_setaffinity(0, sink_cpus))
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        print("targets: median <= 300 ns, p99 <= 5000 ns")
        rc = r.returncode
        rc |= python_line(collector.url, key, sink_cpus)
        rc |= delivery(db, key, "http", collector.url, sink_cpus)
        collector.stop()
        certs = make_certs(tempfile.mkdtemp(prefix="vgsink-bench-tls-"))
        tls = Collector(db, args=("--rate-limit-rps", "0", "--tls-cert", certs["good.pem"],
                                  "--tls-key", certs["good.key"]), scheme="https")
        rc |= delivery(db, key, "https", f"https://localhost:{tls.port}", sink_cpus,
                       ("--ca-file", certs["ca.pem"]))
        tls.stop()
        return rc
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
