"""The ctypes fallback's record conversion: a RequestRecord-shaped object (a
dataclass, a dict or anything with the attributes) to a vgsink_row, with no
asdict() copy. vgsink/_fast.c does the same in C when it is built."""

import ctypes
import json
import math

from ._lib import Row

_STR, _TIME, _AMOUNT, _MEASURE, _JSON, _INT = range(6)
_KINDS = {
    "timestamp": _TIME, "input_units": _AMOUNT, "output_units": _AMOUNT,
    "cached_input_units": _AMOUNT, "cost_usd": _AMOUNT, "rated_price_usd": _AMOUNT,
    "ttfb_ms": _MEASURE, "total_latency_ms": _MEASURE, "metadata_json": _JSON,
    "turn_index": _INT,
}
# (attribute name on the record, vgsink_row field, kind)
FIELDS = [("metadata" if f == "metadata_json" else f, f, _KINDS.get(f, _STR))
          for f, _ in Row._fields_]
_MISSING = object()


class BadField(ValueError):
    """A record field that cannot become a row; the message names it."""


def _text(name, v):
    if isinstance(v, str):
        b = v.encode("utf-8", "strict")
    elif isinstance(v, bytes):
        b = v
    elif isinstance(getattr(v, "value", None), str):  # a str-valued Enum
        b = v.value.encode("utf-8", "strict")
    else:
        raise BadField(f"{name}: must be a string, not {type(v).__name__}")
    if b"\0" in b:
        raise BadField(f"{name}: holds a NUL character")
    return b


def _number(name, v):
    if isinstance(v, (str, bytes)):
        raise BadField(f"{name}: must be a number, not {type(v).__name__}")
    try:
        return float(v)
    except (TypeError, ValueError) as e:
        raise BadField(f"{name}: must be a number, not {type(v).__name__}: {e}") from None


def to_row(obj):
    """A Row for obj, and the bytes it points into (keep both alive for the
    call). Raises BadField naming the field."""
    get = obj.get if isinstance(obj, dict) else None
    d = None if get else getattr(obj, "__dict__", None)
    row = Row()
    for attr, field, kind in FIELDS:
        if get:
            v = get(attr)
        else:
            v = d.get(attr, _MISSING) if d is not None else _MISSING
            if v is _MISSING:
                v = getattr(obj, attr, None)
        if v is None:
            if kind == _MEASURE:
                setattr(row, field, math.nan)
            elif kind == _INT:
                row.turn_index = -1
            continue
        try:
            if kind == _STR:
                setattr(row, field, _text(attr, v))
            elif kind == _JSON:
                if not isinstance(v, str):
                    v = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
                setattr(row, field, _text(attr, v))
            elif kind == _INT:
                if not isinstance(v, int) or not -2**31 <= v < 2**31:
                    raise BadField(f"{attr}: must be an integer in range, not {v!r:.40}")
                row.turn_index = v
            else:
                if kind == _TIME and not isinstance(v, (int, float)) and \
                        hasattr(v, "timestamp"):
                    v = v.timestamp()
                setattr(row, field, _number(attr, v))
        except BadField:
            raise
        except (TypeError, ValueError, UnicodeError) as e:
            raise BadField(f"{attr}: {e}") from None
    return row


ROW_POINTER = ctypes.POINTER(Row)
