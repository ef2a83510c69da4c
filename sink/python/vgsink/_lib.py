"""Finding and loading libvgsink.so.0, and ctypes mirrors of vgsink.h's structs.

The mirrors hold exactly the fields of sink/vgsink.h (tests/test_python_sink.py
compares every offset with the C compiler's). Each struct goes to the library
with its size (the *_sized calls, as vgsink.h's macros do in C), so the
library reads and writes only the fields these mirrors have, whatever its
version. Lookup order: $VGSINK_LIBRARY,
then beside the package (its own directory, then up to PREFIX/lib), then the
system loader."""

import ctypes
import os

SONAME = "libvgsink.so.0"
FULL = 1  # VGSINK_FULL: vgsink_try_record took nothing, the queue is full
NO_DROP = 1  # VGSINK_RECORD_NO_DROP

LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


class Config(ctypes.Structure):
    _fields_ = [
        ("url", ctypes.c_char_p),
        ("api_key", ctypes.c_char_p),
        ("batch_rows", ctypes.c_int),
        ("batch_bytes", ctypes.c_size_t),
        ("flush_interval_ms", ctypes.c_int),
        ("queue_max_rows", ctypes.c_size_t),
        ("spool_dir", ctypes.c_char_p),
        ("spool_max_bytes", ctypes.c_size_t),
        ("request_timeout_ms", ctypes.c_int),
        ("ca_file", ctypes.c_char_p),
        ("log", ctypes.c_void_p),
        ("log_arg", ctypes.c_void_p),
        ("retry_initial_ms", ctypes.c_int),
        ("retry_max_ms", ctypes.c_int),
        ("queue_shards", ctypes.c_int),
        ("agent_id", ctypes.c_char_p),
        ("agent_name", ctypes.c_char_p),
        ("version", ctypes.c_char_p),
        ("region", ctypes.c_char_p),
        ("host", ctypes.c_char_p),
        ("heartbeat_interval_ms", ctypes.c_int),
    ]


CONFIG_FIELDS = [name for name, _ in Config._fields_]


class Row(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_char_p),
        ("timestamp", ctypes.c_double),
        ("modality", ctypes.c_char_p),
        ("model_id", ctypes.c_char_p),
        ("provider", ctypes.c_char_p),
        ("project", ctypes.c_char_p),
        ("input_units", ctypes.c_double),
        ("output_units", ctypes.c_double),
        ("cached_input_units", ctypes.c_double),
        ("cost_usd", ctypes.c_double),
        ("rated_price_usd", ctypes.c_double),
        ("pricing_source", ctypes.c_char_p),
        ("rate_rule", ctypes.c_char_p),
        ("ttfb_ms", ctypes.c_double),
        ("total_latency_ms", ctypes.c_double),
        ("status", ctypes.c_char_p),
        ("fallback_from", ctypes.c_char_p),
        ("error_message", ctypes.c_char_p),
        ("metadata_json", ctypes.c_char_p),
        ("session_id", ctypes.c_char_p),
        ("agent_id", ctypes.c_char_p),
        ("tenant_id", ctypes.c_char_p),
        ("revision", ctypes.c_char_p),
        ("turn_index", ctypes.c_int),
    ]


class Stats(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "recorded", "sent", "duplicates", "rejected", "retries", "spooled", "dropped",
        "queued", "spooled_rows", "spool_bytes", "adopted", "rejected_bytes",
        "rejected_discarded", "invalid")]


def _candidates():
    env = os.environ.get("VGSINK_LIBRARY")
    if env:
        yield env
        return
    d = os.path.dirname(os.path.abspath(__file__))
    for _ in range(5):  # vgsink/, site-packages/, python3.X/, lib/ ...
        yield os.path.join(d, SONAME)
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    yield SONAME  # the system loader


def find_library():
    """The path (or soname) of the library to load, in the documented order."""
    for c in _candidates():
        if os.sep not in c or os.path.exists(c):
            return c
    return SONAME


def load():
    """Loads libvgsink and declares its functions. Raises OSError naming what
    was tried when it cannot be found."""
    path = find_library()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise OSError(f"vgsink: cannot load {path} ({e}); set VGSINK_LIBRARY to the path of "
                      f"{SONAME}, or install it (make install) where the loader finds it") \
            from None
    lib.vgsink_config_init_sized.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.vgsink_config_init_sized.restype = None
    lib.vgsink_open_sized.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p,
                                      ctypes.c_size_t]
    lib.vgsink_open_sized.restype = ctypes.c_void_p
    lib.vgsink_flush.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.vgsink_flush.restype = ctypes.c_int
    lib.vgsink_close.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.vgsink_close.restype = ctypes.c_int
    lib.vgsink_stats_get_sized.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    lib.vgsink_stats_get_sized.restype = None
    lib.vgsink_set_presence.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.vgsink_set_presence.restype = ctypes.c_int
    lib.vgsink_errstr.argtypes = [ctypes.c_void_p]
    lib.vgsink_errstr.restype = ctypes.c_char_p
    # The record call keeps the GIL (PyDLL): it never blocks, and a close on
    # another thread must not free the sink while it runs.
    plib = ctypes.PyDLL(path)
    record = plib.vgsink_record_sized
    record.argtypes = [ctypes.c_void_p, ctypes.POINTER(Row), ctypes.c_size_t, ctypes.c_uint]
    record.restype = ctypes.c_int
    lib.record_gil = lambda h, row, flags: record(h, row, ctypes.sizeof(Row), flags)
    # Blocks its thread until there is room: CDLL, so the GIL is released.
    lib.vgsink_wait_room.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.vgsink_wait_room.restype = ctypes.c_int
    lib.path = path
    return lib
