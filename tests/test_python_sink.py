"""The vgsink Python package (sink/python, laid out in
build/python by the Makefile) against the real collector and PostgreSQL.
Each test runs a worker script with Debian's /usr/bin/python3."""

import ctypes
import json
import os
import signal
import subprocess
import tempfile
import textwrap

import pytest

from conftest import BUILD, ROOT, free_port, run_vgc, wait_until
from test_sink import assert_stored_exactly, spool_files
from test_sink_failures import rows_in_names
from conftest import assert_sink_stats_add_up

PYPKG = os.path.join(BUILD, "python")
PRELUDE = """\
import asyncio, json, logging, os, sys, time
sys.path.insert(0, {tools!r})
from pysink_worker import Costs, RequestRecord, emit, fail, record
import vgsink
"""


def worker_env(extra=None):
    env = dict(os.environ)
    env.pop("VOICEGW_COLLECTOR_URL", None)
    env.pop("VOICEGW_API_KEY", None)
    env["PYTHONPATH"] = PYPKG
    env.pop("VGSINK_LIBRARY", None)
    if "san" in os.path.basename(os.path.normpath(BUILD)):
        # The sanitized libvgsink needs its runtime loaded before python's own.
        asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                              text=True).stdout.strip()
        ubsan = subprocess.run(["gcc", "-print-file-name=libubsan.so"], capture_output=True,
                               text=True).stdout.strip()
        env["LD_PRELOAD"] = f"{asan} {ubsan}"
        env["ASAN_OPTIONS"] = "detect_leaks=0:exitcode=66"
    env.update(extra or {})
    return env


def script(body, **fmt):
    return PRELUDE.format(tools=os.path.join(ROOT, "tests", "tools")) + \
        textwrap.dedent(body).format(**fmt)


def run_worker(body, timeout=300, env=None, **fmt):
    r = subprocess.run(["/usr/bin/python3", "-c", script(body, **fmt)], capture_output=True,
                       text=True, timeout=timeout, env=worker_env(env))
    assert "ERROR: AddressSanitizer" not in r.stderr, r.stderr
    return r


def start_worker(body, env=None, **fmt):
    return subprocess.Popen(["/usr/bin/python3", "-c", script(body, **fmt)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=worker_env(env))


def lines_of(r):
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]


def test_package_uses_the_c_hot_path_and_the_library_beside_it():
    r = run_worker("""
        from vgsink import sink, _lib
        emit(fast=sink._fast is not None, lib=_lib.find_library())
        """)
    out = lines_of(r)[0]
    assert out["fast"] is True, "vgsink._fast was not built or not importable"
    assert out["lib"] == os.path.join(PYPKG, "vgsink", "libvgsink.so.0")


def test_vgsink_library_env_wins_over_the_library_beside_the_package():
    lib = os.path.join(BUILD, "libvgsink.so.0")
    r = run_worker("""
        from vgsink import _lib
        emit(lib=_lib.find_library(), loaded=_lib.load().path)
        """, env={"VGSINK_LIBRARY": lib})
    out = lines_of(r)[0]
    assert out["lib"] == out["loaded"] == lib


def test_ctypes_mirrors_match_vgsink_h_field_by_field(tmp_path):
    # The ctypes structs must have every field of vgsink.h at the C offset.
    import sys
    sys.path.insert(0, PYPKG)
    try:
        from vgsink import _lib
    finally:
        sys.path.remove(PYPKG)
    lines = []
    for name, cls in (("vgsink_config", _lib.Config), ("vgsink_row", _lib.Row),
                      ("vgsink_stats", _lib.Stats)):
        lines.append(f'printf("{name} size %zu\\n", sizeof({name}));')
        for f, _ in cls._fields_:
            lines.append(f'printf("{name} {f} %zu\\n", offsetof({name}, {f}));')
    src = tmp_path / "off.c"
    src.write_text("#include <stddef.h>\n#include <stdio.h>\n#include \"vgsink.h\"\n"
                   "int main(void) {\n" + "\n".join(lines) + "\nreturn 0;\n}\n")
    exe = tmp_path / "off"
    subprocess.run(["cc", "-I", os.path.join(ROOT, "sink"), "-o", str(exe), str(src)],
                   check=True)
    got = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    want = []
    for name, cls in (("vgsink_config", _lib.Config), ("vgsink_row", _lib.Row),
                      ("vgsink_stats", _lib.Stats)):
        want.append(f"{name} size {ctypes.sizeof(cls)}")
        want += [f"{name} {f} {getattr(cls, f).offset}" for f, _ in cls._fields_]
    assert got.split("\n")[:-1] == want


def test_10000_rows_from_asyncio_tasks_stored_exactly_once_and_cost_sums_match(db, collectors):
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    r = run_worker("""
        async def session(sink, costs, t):
            for i in range(100):
                await sink.log_request(record(costs, i, session=f"sess-{{t}}"))
                if i % 10 == 0:
                    await asyncio.sleep(0)
        async def main():
            sink = vgsink.RemoteCollectorSink({url!r}, {key!r}, batch_size=200,
                                              max_buffer=20000, flush_interval=0.2)
            costs = Costs(seed=19)
            await asyncio.gather(*(session(sink, costs, t) for t in range(100)))
            await sink.flush()
            st = sink.stats()
            await sink.aclose()
            emit(stats=st, cost=costs.total)
        asyncio.run(main())
        """, url=c.url, key=key)
    out = lines_of(r)[-1]
    st = out["stats"]
    assert st["recorded"] == st["sent"] == 10000 and st["invalid"] == 0, st
    assert st["dropped"] == 0 and st["rejected"] == 0 and st["queued"] == 0, st
    assert_stored_exactly(db, 10000, out["cost"])


class VoiceGatewaySinkStandIn:
    """What VoiceGateway's own RemoteCollectorSink does with a burst, reduced
    to that: rows kept in a list (past max_buffer the oldest go), an httpx
    POST of json=[asdict(record), ...] to URL/v1/ingest with a bearer key,
    and a log_request that awaits that POST whenever a batch fills, so its
    callers are held back while the collector answers. A timer task posts
    what is left every flush_interval; aclose stops it and posts the rest."""

    def __init__(self, url, key, batch_size, flush_interval, max_buffer=1000):
        import httpx
        self.url, self.headers = url.rstrip("/") + "/v1/ingest", {"Authorization": f"Bearer {key}"}
        self.batch_size, self.flush_interval, self.max_buffer = \
            batch_size, flush_interval, max_buffer
        self.rows, self.dropped, self.timer = [], 0, None
        self.client = httpx.AsyncClient(timeout=10.0)

    async def log_request(self, record):
        import asyncio
        import dataclasses
        self.rows.append(dataclasses.asdict(record))
        if len(self.rows) > self.max_buffer:
            over = len(self.rows) - self.max_buffer
            del self.rows[:over]
            self.dropped += over
        if self.timer is None:
            self.timer = asyncio.get_running_loop().create_task(self._tick())
        if len(self.rows) >= self.batch_size:
            await self.flush()

    async def _tick(self):
        import asyncio
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    async def flush(self):
        batch, self.rows = self.rows, []
        if batch:
            r = await self.client.post(self.url, json=batch, headers=self.headers)
            r.raise_for_status()

    async def aclose(self):
        import asyncio
        if self.timer is not None:
            self.timer.cancel()
            try:
                await self.timer
            except asyncio.CancelledError:
                pass
        await self.flush()
        await self.client.aclose()


def test_log_request_waits_for_room_and_delivers_a_burst_as_voicegateways_own_sink_does(
        db, collectors):
    """Eight asyncio sessions each await log_request for 500 rows (batch_size
    200, flush_interval 0.5, the default max_buffer of 1000), then aclose().
    VoiceGateway's own sink delivers all 4000, because its log_request awaits
    the POST whenever a batch fills. Ours took each row without waiting and
    dropped the oldest past max_buffer: it delivered 1200 of 4000 (stats:
    recorded 4000, sent 1200, dropped 2800). Now log_request waits, without
    blocking the loop, until there is room; both deliver every row, through
    the C hot path and through the ctypes fallback alike."""
    import asyncio
    import sys
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")

    sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
    try:
        from pysink_worker import Costs, record
    finally:
        sys.path.remove(os.path.join(ROOT, "tests", "tools"))

    async def original():
        sink = VoiceGatewaySinkStandIn(c.url, key, batch_size=200, flush_interval=0.5)
        costs = Costs(seed=24)

        async def session(t):
            for i in range(500):
                await sink.log_request(record(costs, i, session=f"orig-{t}"))
        await asyncio.gather(*(session(t) for t in range(8)))
        await sink.aclose()
        return sink.dropped
    assert asyncio.run(original()) == 0
    assert db.scalar("SELECT count(*) FROM cost_rows WHERE session_id LIKE %s", "orig-%") == 4000

    for path, env in (("ours", None), ("ctypes", {"VGSINK_CTYPES_ONLY": "1"})):
        r = run_worker("""
            async def session(sink, costs, t):
                for i in range(500):
                    await sink.log_request(record(costs, i, session=f"{path}-{{t}}"))
            async def main():
                sink = vgsink.RemoteCollectorSink({url!r}, {key!r}, batch_size=200,
                                                  flush_interval=0.5)
                costs = Costs(seed=25)
                ticks = 0
                async def ticker():  # the loop keeps running while sessions wait
                    nonlocal ticks
                    while True:
                        await asyncio.sleep(0.01)
                        ticks += 1
                tick = asyncio.get_running_loop().create_task(ticker())
                await asyncio.gather(*(session(sink, costs, t) for t in range(8)))
                tick.cancel()
                await sink.aclose()
                emit(stats=sink.stats(), ticks=ticks, fast=vgsink.sink._fast is not None)
            asyncio.run(main())
            """, url=c.url, key=key, path=path, env=env)
        out = lines_of(r)[-1]
        st = out["stats"]
        assert out["fast"] is (path == "ours")
        assert st["recorded"] == st["sent"] == 4000 and st["dropped"] == 0, (path, st)
        assert db.scalar("SELECT count(*) FROM cost_rows WHERE session_id LIKE %s",
                         path + "-%") == 4000
        assert out["ticks"] > 0
    assert db.scalar("SELECT count(DISTINCT id) FROM cost_rows") == 12000


def test_metadata_tenant_is_attributed_as_the_python_client_does(db, collectors):
    # The same records through vgsink and as VoiceGateway's client posts them
    # (asdict as JSON): each pair gets the same tenant.
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    cases = [("meta-only", {"tenant": "acme"}, None), ("both", {"tenant": "acme"}, "beta"),
             ("none", {"region": "eu"}, None), ("tenant-id-only", {}, "gamma")]
    r = run_worker("""
        import dataclasses, uuid
        cases = {cases!r}
        sink = vgsink.RemoteCollectorSink({url!r}, {key!r})
        costs = Costs()
        direct = []
        for name, meta, tenant in cases:
            rec = record(costs, 0, id="vg-" + name, metadata=meta, tenant_id=tenant)
            sink.record(rec)
            d = dataclasses.asdict(rec)
            d["id"] = "py-" + name
            direct.append(d)
        ok = sink.flush_sync(60)
        sink.close(10)
        emit(ok=ok, direct=direct)
        """, url=c.url, key=key, cases=cases)
    out = lines_of(r)[-1]
    assert out["ok"]
    resp = c.post("/v1/ingest", json=out["direct"], key=key)
    assert resp.status_code == 200, resp.text
    got = dict(db.query("SELECT id, tenant_id FROM cost_rows"))
    for name, meta, tenant in cases:
        assert got["vg-" + name] == got["py-" + name], (name, got)
    assert got["vg-meta-only"] == "acme" and got["vg-both"] == "beta"
    assert got["vg-none"] is None and got["vg-tenant-id-only"] == "gamma"


def test_collector_down_rows_spool_and_a_sigkilled_worker_restarted_on_it_delivers_all(
        db, collectors):
    key = db.create_key("ingest")
    port = free_port()
    spool = tempfile.mkdtemp(prefix="vgsink-py-spool-")
    w = start_worker("""
        sink = vgsink.RemoteCollectorSink("http://127.0.0.1:{port}", {key!r}, batch_size=20,
                                          spool_dir={spool!r}, retry_initial_ms=20,
                                          retry_max_ms=100)
        costs = Costs(seed=7)
        for i in range(500):
            sink.record(record(costs, i))
        deadline = time.monotonic() + 60
        while True:
            st = sink.stats()
            if st["spooled_rows"] == 500 and st["queued"] == 0:
                break
            if time.monotonic() > deadline:
                fail(f"rows not spooled: {{st}}")
            time.sleep(0.05)
        emit(stats=st, cost=costs.total)
        time.sleep(600)  # the test SIGKILLs us here
        """, port=port, key=key, spool=spool)
    try:
        line = w.stdout.readline()
        assert line, w.stderr.read()
        first = json.loads(line)
        assert_sink_stats_add_up(first["stats"])
    finally:
        w.send_signal(signal.SIGKILL)
        w.wait(30)
    assert rows_in_names(spool_files(spool)) == 500
    c = collectors(db, "--rate-limit-rps", "0", port=port)
    r = run_worker("""
        sink = vgsink.RemoteCollectorSink("http://127.0.0.1:{port}", {key!r},
                                          spool_dir={spool!r})
        ok = sink.flush_sync(120)
        st = sink.stats()
        sink.close(10)
        emit(ok=ok, stats=st)
        """, port=c.port, key=key, spool=spool)
    out = lines_of(r)[-1]
    assert out["ok"], out
    assert out["stats"]["adopted"] == 500 and out["stats"]["sent"] == 500, out
    assert spool_files(spool) == []
    assert_stored_exactly(db, 500, first["cost"])


def test_pickled_sink_rebuilt_in_a_multiprocessing_child_delivers(db, collectors):
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    spool = tempfile.mkdtemp(prefix="vgsink-py-spool-")
    r = run_worker("""
        import multiprocessing, pickle
        from pysink_worker import pickled_child
        if __name__ == "__main__":
            sink = vgsink.RemoteCollectorSink({url!r}, {key!r}, spool_dir={spool!r})
            costs = Costs(seed=1)
            for i in range(200):
                sink.record(record(costs, i, session="parent"))
            assert len(pickle.dumps(sink)) < 2000
            ctx = multiprocessing.get_context("spawn")
            q = ctx.Queue()
            p = ctx.Process(target=pickled_child, args=(sink, q))
            p.start()
            got = q.get(timeout=120)
            p.join(60)
            ok = sink.flush_sync(60)
            st = sink.stats()
            sink.close(10)
            emit(parent_ok=ok, parent=st, child=got, exitcode=p.exitcode,
                 cost=costs.total + __import__("decimal").Decimal(got[1]))
        """, url=c.url, key=key, spool=spool)
    out = lines_of(r)[-1]
    child_ok, _, child_st, child_spool = out["child"]
    assert out["exitcode"] == 0 and child_ok and out["parent_ok"], out
    assert child_st["sent"] == 300 and out["parent"]["sent"] == 200, out
    # The parent holds the spool dir; the child took the next free one.
    assert child_spool == os.path.join(spool, "worker-1")
    assert_stored_exactly(db, 500, out["cost"])


def test_forked_child_and_parent_both_deliver(db, collectors):
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    r = run_worker("""
        from decimal import Decimal
        sink = vgsink.RemoteCollectorSink({url!r}, {key!r}, batch_size=50)
        costs = Costs(seed=3)
        for i in range(100):
            sink.record(record(costs, i, session="before-fork"))
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            ccosts = Costs(seed=4)
            for i in range(300):
                sink.record(record(ccosts, i, session="child"))
            ok = sink.flush_sync(60)
            st = sink.stats()
            sink.close(10)
            os.write(wfd, json.dumps([ok, st, str(ccosts.total)]).encode())
            os._exit(0)
        os.close(wfd)
        for i in range(200):
            sink.record(record(costs, i, session="parent"))
        ok = sink.flush_sync(60)
        st = sink.stats()
        sink.close(10)
        child = json.loads(os.read(rfd, 65536).decode())
        _, status = os.waitpid(pid, 0)
        emit(ok=ok, stats=st, child=child, status=status,
             cost=costs.total + Decimal(child[2]))
        """, url=c.url, key=key)
    out = lines_of(r)[-1]
    child_ok, child_st, _ = out["child"]
    assert out["status"] == 0 and out["ok"] and child_ok, out
    assert out["stats"]["sent"] == 300 and child_st["sent"] == 300, out
    assert_stored_exactly(db, 600, out["cost"])


def test_revoked_key_rows_go_to_rejected_and_count_as_rejected(db, collectors):
    key = db.create_key("ingest")
    rv = run_vgc("keys", "revoke", key, "--db", db.conninfo)
    assert rv.returncode == 0, rv.stderr
    c = collectors(db, "--rate-limit-rps", "0")
    spool = tempfile.mkdtemp(prefix="vgsink-py-spool-")
    r = run_worker("""
        sink = vgsink.RemoteCollectorSink({url!r}, {key!r}, batch_size=10,
                                          spool_dir={spool!r})
        costs = Costs()
        for i in range(30):
            sink.record(record(costs, i))
        ok = sink.flush_sync(60)
        st = sink.stats()
        sink.close(10)
        emit(ok=ok, stats=st)
        """, url=c.url, key=key, spool=spool)
    st = lines_of(r)[-1]["stats"]
    assert st["rejected"] == 30 and st["dropped"] == 0 and st["sent"] == 0, st
    assert_sink_stats_add_up(st)
    kept = spool_files(spool, "rejected")
    assert rows_in_names(kept) == 30, kept
    assert db.scalar("SELECT count(*) FROM cost_rows") == 0


def test_bad_rows_never_raise_are_logged_by_field_and_counted(db, collectors):
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    r = run_worker("""
        seen = []
        class H(logging.Handler):
            def emit(self, rec):
                seen.append(rec.getMessage())
        logging.getLogger("vgsink").addHandler(H())
        async def main():
            sink = vgsink.RemoteCollectorSink({url!r}, {key!r})
            costs = Costs()
            await sink.log_request(record(costs, 0, modality="video"))      # library refuses
            await sink.log_request(record(costs, 1, cost_usd="0.10"))      # wrong Python type
            await sink.log_request({{"modality": "llm", "model_id": "m", "provider": "p",
                                    "cost_usd": 0.5, "metadata": {{"tenant": "d"}}}})  # a dict
            class Obj: pass
            o = Obj()
            for k, v in vars(record(costs, 2)).items():
                setattr(o, k, v)
            await sink.log_request(o)                                      # any object
            await sink.flush()
            st = sink.stats()
            await sink.aclose()
            emit(stats=st, seen=seen)
        asyncio.run(main())
        """, url=c.url, key=key)
    out = lines_of(r)[-1]
    st = out["stats"]
    assert st["invalid"] == 2 and st["recorded"] == st["sent"] == 2, st
    assert any(m.startswith("vgsink: row not recorded: modality") for m in out["seen"]), out
    assert any("cost_usd: must be a number" in m for m in out["seen"]), out
    assert db.scalar("SELECT count(*) FROM cost_rows") == 2


def test_library_log_lines_reach_the_vgsink_logger():
    port = free_port()
    r = run_worker("""
        seen = []
        class H(logging.Handler):
            def emit(self, rec):
                seen.append((rec.name, rec.levelname, rec.getMessage()))
        logging.getLogger("vgsink").addHandler(H())
        logging.getLogger("vgsink").setLevel(logging.DEBUG)
        sink = vgsink.RemoteCollectorSink("http://127.0.0.1:{port}", "k", batch_size=1,
                                          retry_initial_ms=20, retry_max_ms=50)
        sink.record(record(Costs(), 0))
        deadline = time.monotonic() + 30
        while not any("not delivered" in m for _, _, m in seen):
            if time.monotonic() > deadline:
                fail(f"no retry line logged: {{seen}}")
            time.sleep(0.05)
        sink.close(0)
        emit(seen=seen)
        """, port=port)
    seen = lines_of(r)[-1]["seen"]
    assert any(n == "vgsink" and lvl == "WARNING" and "not delivered" in m for n, lvl, m in seen)


def test_voicegateway_sink_protocol_isinstance_and_capture_pipeline_drive(db, collectors):
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    r = run_worker("""
        from typing import Protocol, runtime_checkable
        @runtime_checkable
        class Sink(Protocol):
            async def log_request(self, record): ...
            async def flush(self): ...
            async def aclose(self): ...
        logged = 0
        async def session(sink, costs, n, s):
            # VoiceGateway: one row per provider request, flush when the session closes.
            global logged
            for i in range(n):
                await sink.log_request(record(costs, i, session=f"sess-{{s}}"))
                logged += 1
                await asyncio.sleep(0)
            before = logged
            if not await sink.flush():
                fail(f"flush timed out: {{sink.stats()}}")
            st = sink.stats()
            if st["sent"] + st["rejected"] < before:
                fail(f"flush returned before rows logged earlier were answered: {{st}}")
        async def main():
            sink = vgsink.RemoteCollectorSink({url!r}, {key!r}, max_buffer=5000)
            if not isinstance(sink, Sink):
                fail("not a Sink")
            costs = Costs(seed=5)
            await asyncio.gather(*(session(sink, costs, 20 + s, s) for s in range(30)))
            await sink.aclose()  # once, at shutdown
            emit(stats=sink.stats(), cost=costs.total, logged=logged)
        asyncio.run(main())
        """, url=c.url, key=key)
    out = lines_of(r)[-1]
    n = sum(20 + s for s in range(30))
    assert out["logged"] == n and out["stats"]["sent"] == n, out
    assert_stored_exactly(db, n, out["cost"])
    assert db.scalar("SELECT count(DISTINCT session_id) FROM cost_rows") == 30


def test_pip_installs_the_package_offline_and_it_records(tmp_path, db, collectors):
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    target = tmp_path / "site"
    src = tmp_path / "src"
    subprocess.run(["cp", "-r", os.path.join(ROOT, "sink"), str(src)], check=True)
    p = subprocess.run(["/usr/bin/python3", "-m", "pip", "install", "--no-index", "--no-deps",
                        "--target", str(target), str(src / "python")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    r = subprocess.run(
        ["/usr/bin/python3", "-c", textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {os.path.join(ROOT, 'tests', 'tools')!r})
            from pysink_worker import Costs, record, emit
            import vgsink
            s = vgsink.RemoteCollectorSink({c.url!r}, {key!r})
            s.record(record(Costs(), 0))
            emit(ok=s.flush_sync(60), file=vgsink.__file__)
            s.close(10)
            """)],
        capture_output=True, text=True, timeout=120,
        env=worker_env({"PYTHONPATH": str(target),
                        "VGSINK_LIBRARY": os.path.join(BUILD, "libvgsink.so.0")}))
    out = lines_of(r)[-1]
    assert out["ok"] and out["file"].startswith(str(target)), out
    assert db.scalar("SELECT count(*) FROM cost_rows") == 1


def test_agent_id_puts_the_python_worker_in_the_roster_with_its_presence(db, collectors):
    key = db.create_key("ingest")
    reader = db.create_key("read")
    c = collectors(db)
    r = run_worker("""
        sink = vgsink.RemoteCollectorSink({url!r}, {key!r}, agent_id="py-worker-1",
                                          agent_name="pyfleet", region="iad",
                                          heartbeat_interval_ms=200)
        assert sink.set_presence("busy", 3)
        assert not sink.set_presence("sleeping", 1)
        costs = Costs()
        for i in range(50):
            sink.record(record(costs, i))
        ok = sink.flush_sync(60)
        import urllib.request
        seen, deadline = None, time.monotonic() + 60
        while time.monotonic() < deadline:  # until a beat carries sent == 50
            req = urllib.request.Request({url!r} + "/v1/agents",
                                         headers={{"Authorization": "Bearer " + {reader!r}}})
            agents = json.load(urllib.request.urlopen(req, timeout=10))["agents"]
            seen = [a for a in agents if a["agent_id"] == "py-worker-1"]
            if seen and seen[0]["sink"] and seen[0]["sink"]["sent"] == 50:
                break
            time.sleep(0.1)
        st = sink.stats()
        sink.close(10)
        emit(ok=ok, stats=st)
        """, url=c.url, key=key, reader=reader)
    out = lines_of(r)[-1]
    assert out["ok"], r.stderr
    import httpx
    agents = httpx.get(c.url + "/v1/agents", headers={"Authorization": f"Bearer {reader}"},
                       timeout=10).json()["agents"]
    mine = [a for a in agents if a["agent_id"] == "py-worker-1"]
    assert len(mine) == 1, agents
    a = mine[0]
    assert (a["agent_name"], a["region"], a["status"], a["active_sessions"]) == \
        ("pyfleet", "iad", "busy", 3), a
    assert a["sink"] is not None and a["sink"]["sent"] == 50, a
    assert_sink_stats_add_up(a["sink"])
