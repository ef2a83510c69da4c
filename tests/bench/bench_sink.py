#!/usr/bin/env python3
"""make bench-sink: the cost of vgsink_record (median, p99) with 1, 2 and 8
recording threads while the sink sends to a real collector, and the RSS of
1,000,000 queued rows. Environment: BENCH_ROWS (calls per run, default 200000)."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from conftest import BUILD, Collector, Db, PgCluster  # noqa: E402
from bench_ingest import machine  # noqa: E402

ROWS = os.environ.get("BENCH_ROWS", "200000")


def main():
    print(f"bench-sink: {ROWS} vgsink_record calls per run")
    print(f"machine: {machine()}")
    cluster = PgCluster().start()
    try:
        db = Db(cluster, cluster.createdb()).migrate()
        key = db.create_key("ingest")
        collector = Collector(db, args=("--rate-limit-rps", "0"))
        r = subprocess.run([os.path.join(BUILD, "vgsink-bench"), collector.url, key, ROWS],
                           capture_output=True, text=True, timeout=1200)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        collector.stop()
        print("targets: median <= 300 ns, p99 <= 5000 ns")
        return r.returncode
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
