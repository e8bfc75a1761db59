"""How long the envelope batcher holds an event: from ``add`` to the seal of its envelope.

Real time, real ``EnvelopeBatcher``, driven the way the produce loop drives it: every arrival
is added and ``flush_due`` runs; when the source has nothing waiting (its queue is empty) the
loop flushes everything (``flush_all``). A light source (a quiet market) and a heavy one (a
cascade: bursts of tens of thousands of events per second, with µs of parse work per event),
once within what the loop can parse and once beyond it.
"""

from __future__ import annotations

import gc
import queue
import random
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

from liqwatch.bench.worker_load import StressLoad, stress_envelopes
from liqwatch.schema import Envelope, MarketEvent
from producers.envelopes import EnvelopeBatcher


@dataclass(frozen=True)
class Source:
    name: str
    events_per_s: float
    burst: int  # events arriving together
    duration_s: float
    parse_us: float  # busy work per event in the produce loop


LIGHT = Source("light", events_per_s=40, burst=1, duration_s=3.0, parse_us=20)
# a cascade the produce loop keeps up with (~50 % busy): it is idle between bursts
HEAVY = Source("heavy", events_per_s=30_000, burst=30, duration_s=3.0, parse_us=15)
# more than the loop can parse: the queue never empties, envelopes fill up
SATURATED = Source("saturated", events_per_s=70_000, burst=70, duration_s=3.0, parse_us=18)
SOURCES = (LIGHT, HEAVY, SATURATED)


@dataclass(frozen=True)
class FlushDelay:
    source: str
    events: int
    envelopes: int
    max_ms: float
    p99_ms: float
    mean_envelope_events: float
    max_loop_stall_ms: float  # longest pause of the produce loop itself (GIL, CPU contention)
    seal_ms: int  # the batcher's max_delay_ms: the producers' own


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


def _busy(us: float) -> None:
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass


def _feed(source: Source, events: list[MarketEvent], inbox: queue.SimpleQueue[Any]) -> None:
    """The network side: bursts on a schedule, whether or not the loop keeps up."""
    rnd = random.Random(7)
    gap = source.burst / source.events_per_s
    due = time.perf_counter()
    n = int(source.events_per_s * source.duration_s)
    for i in range(0, n, source.burst):
        for event in events[i : i + source.burst]:
            inbox.put(event)
        due += rnd.expovariate(1 / gap)
        ahead = due - time.perf_counter()
        # behind schedule, the next burst goes at once: even sleep(0) would hand the GIL to the
        # loop and pace the feed to it, and a saturated source would never saturate
        if ahead > 0:
            time.sleep(ahead)
    inbox.put(None)


def _measure(source: Source, events: list[MarketEvent]) -> FlushDelay:
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    batcher = EnvelopeBatcher("bench")  # the producers' settings: what ships is measured
    added: dict[str, float] = {}
    delays: list[float] = []
    sealed = 0

    def seal(envelopes: list[Envelope]) -> None:
        nonlocal sealed
        now = time.perf_counter()
        sealed += len(envelopes)
        for env in envelopes:
            delays.extend((now - added.pop(e.event_id)) * 1000 for e in env.events)

    feeder = threading.Thread(target=_feed, args=(source, events, inbox), daemon=True)
    feeder.start()
    stall = 0.0
    last = time.perf_counter()
    while True:
        try:
            event = inbox.get_nowait()
        except queue.Empty:
            seal(batcher.flush_all(_now_ms()))  # nothing waiting: the source is idle
            event = inbox.get()
            last = time.perf_counter()
        if event is None:
            break
        _busy(source.parse_us)
        added[event.event_id] = time.perf_counter()
        full = batcher.add(event, _now_ms())
        seal([full] if full is not None else [])
        now = time.perf_counter()
        stall = max(stall, now - last - source.parse_us / 1e6)
        last = now
        seal(batcher.flush_due(_now_ms()))
    seal(batcher.flush_all(_now_ms()))
    feeder.join()
    assert not added, "every event must be sealed"
    return FlushDelay(
        source=source.name,
        events=len(delays),
        envelopes=sealed,
        max_ms=max(delays),
        p99_ms=statistics.quantiles(delays, n=100)[98],
        mean_envelope_events=len(delays) / sealed,
        max_loop_stall_ms=stall * 1000,
        seal_ms=batcher.max_delay_ms,
    )


def measure_flush_delays() -> list[FlushDelay]:
    wanted = int(max(s.events_per_s * s.duration_s for s in SOURCES)) + 1
    load = StressLoad(events=wanted, assets=20)
    events = [e for env in stress_envelopes(load) for e in env.events][:wanted]
    random.Random(3).shuffle(events)  # arrivals mix assets and kinds, like a venue feed
    # the test input is far bigger than a producer's heap: keep it out of the GC's scans
    gc.collect()
    gc.freeze()
    try:
        return [_measure(source, events) for source in SOURCES]
    finally:
        gc.unfreeze()
