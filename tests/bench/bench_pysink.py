#!/usr/bin/env python3
"""The Python line of `make bench-sink` (run by bench_sink.py with build/python
on sys.path): median and p99 of `await sink.log_request(record)` for
vgsink.RemoteCollectorSink, beside a plain-Python baseline that does what
VoiceGateway's sink does per row (asdict() and a list append), timed in
alternating blocks of the same run so both see the same machine.
Usage: bench_pysink.py URL KEY [ROWS]"""

import asyncio
import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from pysink_worker import Costs, record  # noqa: E402

import vgsink  # noqa: E402
from vgsink import sink as vgsink_sink  # noqa: E402

BLOCK = 1000


class ListSink:
    """VoiceGateway's RemoteCollectorSink, minus the network: asdict + append."""

    def __init__(self, batch_size=20):
        self._buffer = []
        self._batch_size = batch_size

    async def log_request(self, record):
        self._buffer.append(dataclasses.asdict(record))
        if len(self._buffer) >= self._batch_size:
            self._pending = self._buffer  # handed to a flush task in VoiceGateway
            self._buffer = []


def pct(v, p):
    return v[min(len(v) - 1, len(v) * p // 100)]


async def run(url, key, rows):
    sink = vgsink.RemoteCollectorSink(url, key, batch_size=500, max_buffer=rows + 1)
    base = ListSink()
    costs = Costs()
    recs = [record(costs, i, session=f"sess-{i // 20}") for i in range(rows)]
    clock = time.perf_counter_ns
    ours, theirs = [], []
    for start in range(0, rows, BLOCK):
        block = recs[start:start + BLOCK]
        for r in block:
            t = clock()
            await sink.log_request(r)
            ours.append(clock() - t)
        for r in block:
            t = clock()
            await base.log_request(r)
            theirs.append(clock() - t)
    ok = await sink.flush()
    st = sink.stats()
    await sink.aclose()
    ours.sort()
    theirs.sort()
    path = "C extension" if vgsink_sink._fast is not None else "ctypes only"
    m, b = pct(ours, 50), pct(theirs, 50)
    print(f"python log_request ({path}): {rows} calls, median {m} ns, p99 {pct(ours, 99)} ns; "
          f"baseline asdict()+append: median {b} ns, p99 {pct(theirs, 99)} ns; "
          f"ratio {m / b:.2f} (target <= 0.33); {st['sent']} rows sent"
          f"{'' if ok and st['sent'] == rows else ' NOT ALL SENT'}")
    return 0 if ok and st["sent"] == rows else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(run(sys.argv[1], sys.argv[2],
                             int(sys.argv[3]) if len(sys.argv) > 3 else 100000)))
