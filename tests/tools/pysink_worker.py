"""Helpers the Python sink tests' worker scripts import (tests/test_python_sink.py):
VoiceGateway's RequestRecord shape, a row maker with random float costs, and a
JSON line out. Run with build/python on sys.path."""

import dataclasses
import json
import random
import sys
import time
import uuid
from decimal import Decimal
from typing import Optional


@dataclasses.dataclass
class RequestRecord:
    """VoiceGateway's record, field for field."""
    id: str
    timestamp: float
    modality: str
    model_id: str
    provider: str
    project: str = "default"
    input_units: float = 0.0
    output_units: float = 0.0
    cached_input_units: float = 0.0
    cost_usd: float = 0.0
    rated_price_usd: float = 0.0
    pricing_source: str = "catalog"
    rate_rule: Optional[str] = None
    ttfb_ms: Optional[float] = None
    total_latency_ms: Optional[float] = None
    status: str = "success"
    fallback_from: Optional[str] = None
    error_message: Optional[str] = None
    metadata: dict = dataclasses.field(default_factory=dict)
    session_id: Optional[str] = None
    agent_id: Optional[str] = None
    revision: Optional[str] = None
    turn_index: Optional[int] = None
    tenant_id: Optional[str] = None


class Costs:
    """Random float costs, and their exact sum as Python prints them."""

    def __init__(self, seed=1):
        self.rnd = random.Random(seed)
        self.total = Decimal(0)

    def next(self):
        c = self.rnd.uniform(0, 0.05)
        self.total += Decimal(repr(c))
        return c


def record(costs, i, session="sess-1", **over):
    r = RequestRecord(id=str(uuid.uuid4()), timestamp=time.time(),
                      modality=("stt", "llm", "tts")[i % 3], model_id="openai/gpt-4o-mini",
                      provider="openai", input_units=1200, output_units=350,
                      cost_usd=costs.next(), rated_price_usd=0.0004, rate_rule="per_token",
                      ttfb_ms=420.5, metadata={"tenant": "acme", "turn": i},
                      session_id=session, agent_id="agent-1", revision="r1", turn_index=i)
    for k, v in over.items():
        setattr(r, k, v)
    return r


def emit(**out):
    for k, v in list(out.items()):
        if isinstance(v, Decimal):
            out[k] = str(v)
    print(json.dumps(out), flush=True)


def fail(msg):
    print(msg, file=sys.stderr, flush=True)
    sys.exit(1)


def pickled_child(sink, q):
    """A multiprocessing child: records into the sink it was handed pickled."""
    costs = Costs(seed=2)
    for i in range(300):
        sink.record(record(costs, i, session="child"))
    ok = sink.flush_sync(60)
    q.put((ok, str(costs.total), sink.stats(), sink.spool_dir))
    sink.close(10)
