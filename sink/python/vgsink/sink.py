"""RemoteCollectorSink: VoiceGateway's sink interface over libvgsink. Same
arguments, same Sink protocol (async log_request/flush/aclose), but rows go
through libvgsink's queue, retries and crash-safe spool instead of a list."""

import asyncio
import atexit
import ctypes
import logging
import os
import threading
import time
import warnings
import weakref

from . import _lib, _rows

try:
    if os.environ.get("VGSINK_CTYPES_ONLY"):  # to measure or test the fallback
        raise ImportError("VGSINK_CTYPES_ONLY is set")
    from . import _fast
except ImportError:  # not built: the ctypes path does the same, slower
    _fast = None

log = logging.getLogger("vgsink")

_LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: logging.DEBUG}
_LIB = None
_LIB_LOCK = threading.Lock()
_OPEN = weakref.WeakSet()  # sinks to close at interpreter exit
_SPOOL_WORKERS = 64  # spool_dir/worker-1..64 for processes after the first
_AT_EXIT_TIMEOUT_S = 2.0
_ROOM_SLICE_S = 0.25  # a waiting log_request's helper thread returns this often, so
                      # close() never waits long for it


def _lib_get():
    global _LIB
    with _LIB_LOCK:
        if _LIB is None:
            _LIB = _lib.load()
        return _LIB


# ---- the library's log lines, into logging.getLogger("vgsink") ---------------------------

_pump_pid = None
_pump_lock = threading.Lock()


def _pump():
    while True:
        lines, lost = _fast.log_wait(0.5)
        for level, msg in lines:
            log.log(_LEVELS.get(level, logging.INFO), "%s", msg)
        if lost:
            log.warning("vgsink: %d log lines were lost (more than 256 waiting)", lost)


def _log_callback():
    """The vgsink_config.log to use, started on first use in each process."""
    global _pump_pid
    if _fast is None:
        return ctypes.cast(_py_log, ctypes.c_void_p).value
    with _pump_lock:
        if _pump_pid != os.getpid():
            threading.Thread(target=_pump, name="vgsink-log", daemon=True).start()
            _pump_pid = os.getpid()
    return _fast.log_address()


def _py_log_fn(level, msg, arg):
    # ctypes fallback only: this takes the GIL on the sender thread, so an
    # os.fork() racing a log line can stall (see README); _fast avoids it.
    log.log(_LEVELS.get(level, logging.INFO), "%s", msg.decode("utf-8", "replace"))


_py_log = _lib.LOG_CALLBACK(_py_log_fn)


# ---- the sink ---------------------------------------------------------------------------

_SUPERSEDED = ("max_retries", "backoff")


class RemoteCollectorSink:
    """A drop-in for VoiceGateway's RemoteCollectorSink. See README.md,
    "Python workers", for how each argument maps onto vgsink_config."""

    def __init__(self, url, virtual_key, *, batch_size=20, flush_interval=2.0, max_buffer=1000,
                 max_retries=2, backoff=0.2, client=None, spool_dir=None, agent_id=None,
                 **sink_options):
        for k in sink_options:
            if k not in _lib.CONFIG_FIELDS or k in ("url", "api_key", "log", "log_arg"):
                raise TypeError(f"RemoteCollectorSink: unknown option {k!r} (sink_options are "
                                f"vgsink_config fields: {', '.join(_OPTION_FIELDS)})")
        if client is not None:
            warnings.warn("vgsink.RemoteCollectorSink: client is ignored; libvgsink sends "
                          "with its own connection", RuntimeWarning, stacklevel=2)
            log.warning("vgsink: client is ignored; libvgsink sends with its own connection")
        self._conf = dict(url=url, virtual_key=virtual_key, batch_size=batch_size,
                          flush_interval=flush_interval, max_buffer=max_buffer,
                          max_retries=max_retries, backoff=backoff, spool_dir=spool_dir,
                          agent_id=agent_id, sink_options=dict(sink_options))
        self._init_state()
        if agent_id is not None and "agent_id" not in _lib.CONFIG_FIELDS:  # an older library
            log.warning("vgsink: agent_id %r is kept, but this libvgsink has no heartbeat: "
                        "presence heartbeats need a newer libvgsink", agent_id)
        self._ensure()  # a bad config is an error here, not at the first row

    def _init_state(self):
        self._lock = threading.Lock()    # guards opening and closing
        self._idle = threading.Condition(self._lock)
        self._busy = 0                   # flush/stats calls in the library now
        self._handle = None              # this process's vgsink *, or None
        self._recorder = None            # _fast.Recorder over _handle
        self._pid = None                 # the process that opened _handle
        self._closed = False
        self._invalid = 0                # rows refused before reaching the library
        self._lost = 0                   # rows that found no open sink
        self._spool = None               # the spool dir actually used
        self._bufs = None
        self._room_waiter = None         # (loop, future) log_request callers wait on

    # ---- pickle: configuration only ----------------------------------------------------

    def __getstate__(self):
        return {"conf": self._conf}

    def __setstate__(self, state):
        self._conf = state["conf"]
        self._init_state()

    # ---- opening (lazily, once per process) ------------------------------------------

    def _config(self, lib, spool_dir):
        c = self._conf
        buf = ctypes.create_string_buffer(ctypes.sizeof(_lib.Config))
        cfg = _lib.Config.from_buffer(buf)
        lib.vgsink_config_init_sized(buf, len(buf))
        keep = []

        def text(v):
            b = None if v is None else os.fsencode(v) if isinstance(v, os.PathLike) \
                else str(v).encode()
            keep.append(b)
            return b
        cfg.url = text(c["url"])
        cfg.api_key = text(c["virtual_key"])
        cfg.batch_rows = int(c["batch_size"])
        cfg.flush_interval_ms = max(1, int(round(float(c["flush_interval"]) * 1000)))
        cfg.queue_max_rows = int(c["max_buffer"])
        cfg.spool_dir = text(spool_dir)
        cfg.log = _log_callback()
        if c["agent_id"] is not None and "agent_id" in _lib.CONFIG_FIELDS:
            setattr(cfg, "agent_id", text(c["agent_id"]))
        for k, v in c["sink_options"].items():
            setattr(cfg, k, text(v) if _CONFIG_TYPES[k] is ctypes.c_char_p else v)
        return buf, keep

    def _open_locked(self):
        lib = _lib_get()
        spool = self._conf["spool_dir"]
        tries = [spool] + ([os.path.join(spool, f"worker-{i}")
                            for i in range(1, _SPOOL_WORKERS + 1)] if spool else [])
        err = ctypes.create_string_buffer(512)
        for d in tries:
            if d and d != spool:
                os.makedirs(d, exist_ok=True)
            buf, keep = self._config(lib, d)
            h = lib.vgsink_open_sized(buf, len(buf), err, len(err))
            if h:
                self._spool = d
                return lib, h
            msg = err.value.decode("utf-8", "replace")
            if "in use by another process" not in msg:
                break
        raise ValueError(f"vgsink: {msg}")

    def _ensure(self):
        """This process's open sink (its first call after a fork or an unpickle
        opens it); None once closed."""
        pid = os.getpid()
        if self._pid == pid and self._handle is not None:
            return self._handle
        with self._lock:
            if self._closed:
                return None
            if self._pid != pid:
                # Another process's sink (we were forked): never touch it.
                if self._recorder is not None:
                    self._recorder.detach()
                self._handle = self._recorder = None
                lib, h = self._open_locked()
                self._lib = lib
                self._recorder = _fast.Recorder(h, *(
                    ctypes.cast(f, ctypes.c_void_p).value for f in (
                        lib.vgsink_record_sized, lib.vgsink_errstr))) \
                    if _fast is not None else None
                self._handle = h
                self._pid = pid
                _OPEN.add(self)
            return self._handle

    # ---- recording -------------------------------------------------------------------

    def record(self, record):
        """Hands one row to libvgsink (no network, no disk; thread-safe). Never
        waits: when the queue is full (and the spool, if any, cannot take
        more) the oldest queued row is dropped, counted in stats()['dropped'].
        Never raises for a bad row: logs the field named in the error, and
        counts the row in stats()['invalid']."""
        err = self._put(record, False)
        if err is not None:
            self._bad(err)

    def _put(self, record, no_drop):
        """None when the row was taken; True when no_drop and the queue is
        full (nothing taken); else the message."""
        rec = self._recorder
        if rec is not None and self._pid == os.getpid():
            return rec.offer(record) if no_drop else rec.record(record)
        return self._record_slow(record, no_drop)

    def _record_slow(self, record, no_drop):
        try:
            h = self._ensure()
        except Exception as e:  # cannot open in this process (logged, counted)
            self._lost += 1
            return f"no sink in this process: {e}"
        if h is None:
            self._lost += 1
            return "the sink is closed"
        if self._recorder is not None:
            return self._recorder.offer(record) if no_drop else self._recorder.record(record)
        try:
            row = _rows.to_row(record)
        except _rows.BadField as e:
            with self._lock:
                self._invalid += 1
            return str(e)
        with self._lock:  # ctypes: a close must not free the sink mid-call
            if self._handle is None or self._pid != os.getpid():
                self._lost += 1
                return "the sink is closed"
            rc = self._lib.record_gil(self._handle, ctypes.byref(row),
                                      _lib.NO_DROP if no_drop else 0)
            if rc == 0:
                return None
            if rc == _lib.FULL:
                return True
            return self._lib.vgsink_errstr(self._handle).decode("utf-8", "replace")

    def _bad(self, err):
        log.error("vgsink: row not recorded: %s", err)

    # ---- the Sink protocol ---------------------------------------------------------

    # How long log_request waits for room in a full queue before it records
    # anyway (the oldest queued row is then dropped, counted): about as long as
    # VoiceGateway's own sink waits for one POST and its retries (3 x 10 s).
    record_wait_s = 30.0

    async def log_request(self, record):
        """Hands one row to libvgsink. When the queue is full (the collector
        answers slower than rows come, and the spool, if any, cannot take
        them) it waits, without blocking the event loop, until the
        collector's answers make room, as VoiceGateway's own sink holds its
        callers back while it POSTs. Past record_wait_s it records anyway,
        and the oldest queued row is dropped (counted)."""
        err = self._put(record, True)
        if err is True:
            err = await self._wait_and_put(record)
        if err is not None:
            self._bad(err)

    async def _wait_and_put(self, record):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.record_wait_s
        while True:
            left = deadline - loop.time()
            if left <= 0:
                log.warning("vgsink: no room in the queue after %.1f s; recording anyway, "
                            "which drops the oldest queued row", self.record_wait_s)
                return self._put(record, False)
            room = await self._room(loop, min(left, _ROOM_SLICE_S))
            err = self._put(record, True)
            if err is not True:
                return err
            if room:  # another caller took the room first
                await asyncio.sleep(0.005)

    async def _room(self, loop, timeout_s):
        """Waits, on one helper thread shared by every waiting caller on this
        loop, until vgsink_wait_room sees room or timeout_s passes. True when
        it saw room."""
        w = self._room_waiter
        if w is None or w[0] is not loop or w[1].done():
            w = (loop, loop.run_in_executor(None, self._wait_room_sync, timeout_s))
            self._room_waiter = w
        return await asyncio.shield(w[1])

    def _wait_room_sync(self, timeout_s):
        h = self._enter()
        if h is None:
            return False
        try:
            return self._lib.vgsink_wait_room(h, max(1, int(timeout_s * 1000))) == 0
        finally:
            self._leave()

    # How long flush() and aclose() wait for the collector's answers; past it
    # the rows stay queued (or spooled) and nothing is lost.
    flush_timeout_s = 30.0

    async def flush(self):
        """Waits, in a thread, until every row recorded before the call was
        answered by the collector; False after flush_timeout_s (rows stay
        queued or spooled)."""
        return await asyncio.get_running_loop().run_in_executor(
            None, self.flush_sync, self.flush_timeout_s)

    async def aclose(self):
        """Flushes (in a thread) for up to flush_timeout_s, then closes; what is
        unsent stays in the spool."""
        return await asyncio.get_running_loop().run_in_executor(None, self.close,
                                                                self.flush_timeout_s)

    # ---- synchronous API -----------------------------------------------------------

    def _enter(self):
        h = self._ensure()
        if h is None:
            return None
        with self._lock:
            if self._handle is None or self._pid != os.getpid():
                return None
            self._busy += 1
            return self._handle

    def _leave(self):
        with self._lock:
            self._busy -= 1
            if self._busy == 0:
                self._idle.notify_all()

    def flush_sync(self, timeout_s=10.0):
        """True once every row recorded before the call was answered; False at
        the timeout (rows stay queued or spooled, nothing is lost)."""
        h = self._enter()
        if h is None:
            return False
        try:
            rc = self._lib.vgsink_flush(h, int(timeout_s * 1000))
            if rc != 0:
                log.warning("vgsink: %s", self._lib.vgsink_errstr(None).decode())
            return rc == 0
        finally:
            self._leave()

    def set_presence(self, status, active_sessions=0):
        """Says what the worker is doing for the next heartbeat ("idle" or
        "busy", and its session count); needs agent_id. Never blocks. False
        (with a warning) when the library refuses the values."""
        h = self._enter()
        if h is None:
            return False
        try:
            rc = self._lib.vgsink_set_presence(
                h, None if status is None else str(status).encode(), int(active_sessions))
            if rc != 0:
                log.warning("vgsink: set_presence: %s", self._lib.vgsink_errstr(None).decode())
            return rc == 0
        finally:
            self._leave()

    def close(self, timeout_s=10.0):
        """Flushes up to timeout_s, then closes; what is unsent stays in the
        spool (or is counted dropped without one). True when nothing was left."""
        deadline = time.monotonic() + timeout_s
        if not self._closed and self._pid == os.getpid():
            self.flush_sync(timeout_s)  # first, so the final stats() show it sent
        timeout_s = max(0.0, deadline - time.monotonic())
        with self._lock:
            if self._closed:
                return True
            self._closed = True
            h, mine = self._handle, self._pid == os.getpid()
            if self._recorder is not None and mine:
                self._recorder.detach()
            while self._busy:
                self._idle.wait()
            self._final = self._stats_locked() if (h and mine) else None
            self._handle = None
        _OPEN.discard(self)
        if not h or not mine:
            return True
        rc = self._lib.vgsink_close(h, int(timeout_s * 1000))
        if rc != 0:
            log.warning("vgsink: close: %s", self._lib.vgsink_errstr(None).decode())
        return rc == 0

    def _stats_locked(self):
        buf = ctypes.create_string_buffer(ctypes.sizeof(_lib.Stats))
        self._lib.vgsink_stats_get_sized(self._handle, buf, len(buf))
        st = _lib.Stats.from_buffer(buf)
        return {name: getattr(st, name) for name, _ in _lib.Stats._fields_}

    def stats(self):
        """The vgsink_stats fields as a dict (this process's sink), plus
        'invalid' counting rows refused before they reached the library."""
        if self._closed:
            st = dict(getattr(self, "_final", None) or
                      {name: 0 for name, _ in _lib.Stats._fields_})
        else:
            h = self._enter()
            if h is None:
                st = {name: 0 for name, _ in _lib.Stats._fields_}
            else:
                try:
                    with self._lock:
                        st = self._stats_locked()
                finally:
                    self._leave()
        rec = self._recorder if self._pid == os.getpid() else None
        st["invalid"] += self._invalid + (rec.invalid if rec is not None else 0)
        st["not_recorded"] = self._lost + (rec.closed if rec is not None else 0)
        return st

    @property
    def spool_dir(self):
        """The spool dir this process's sink uses (spool_dir, or spool_dir/worker-N
        when another process holds it)."""
        return self._spool

    def __repr__(self):
        return f"<vgsink.RemoteCollectorSink {self._conf['url']!r} pid={self._pid}>"


_CONFIG_TYPES = dict(_lib.Config._fields_)
_OPTION_FIELDS = [f for f in _lib.CONFIG_FIELDS if f not in ("url", "api_key", "log", "log_arg")]


def _after_fork_in_child():
    # Another thread of the parent may have held a sink's lock at the fork.
    global _pump_lock
    _pump_lock = threading.Lock()
    for s in list(_OPEN):
        s._lock = threading.Lock()
        s._idle = threading.Condition(s._lock)
        s._busy = 0


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _close_at_exit():
    for s in list(_OPEN):
        if s._pid == os.getpid():
            s.close(_AT_EXIT_TIMEOUT_S)
