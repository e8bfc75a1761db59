"""``liqwatch bench engine`` (embedded part): events/s through ``Engine.process`` on one core.

A large synthetic stream (mixed liquidations, open interest and mark prices for many
instruments of several assets, in envelopes as the producers send them: ≤ 500 events or
50 ms per kind and asset) goes through the engine,
and through a naive per-event pure-Python implementation of the same core work (decayed
realized buckets, estimated levels, consumption, a sliding cascade window) in the same run, so
the figure is always read next to a baseline measured on the same machine at the same moment.
Times are CPU time of this process (one core), so other load on the machine does not count.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from liqwatch.bench import engine_build
from liqwatch.bench.detect import quiet_engine_logs
from liqwatch.schema import (
    Completeness,
    Liquidation,
    MarketEvent,
    MarkPrice,
    OpenInterest,
    Side,
    Venue,
)

TARGET_EVENTS_S = 200_000
ASSETS = {"BTC": 112_000.0, "ETH": 4_100.0, "SOL": 190.0, "XRP": 2.6, "DOGE": 0.25, "ADA": 0.8}
VENUES = [Venue.BINANCE, Venue.BYBIT, Venue.OKX]
INSTRUMENTS = ["USDT-PERP", "USDC-PERP", "USD-INVERSE"]
ENVELOPE_EVENTS = 500
ENVELOPE_SPAN_MS = 50


@dataclass(frozen=True)
class Stream:
    envelopes: list[list[MarketEvent]]
    events: int
    span_ms: int


def synthetic_stream(seconds: int = 600, rate: int = 3000, seed: int = 1) -> Stream:
    """``rate`` events/s for ``seconds``: 45 % mark prices, 45 % liquidations, 10 % OI."""
    rng = random.Random(seed)
    t0 = 1_760_130_000_000
    price = dict(ASSETS)
    oi = {(a, v, i): 1e4 for a in ASSETS for v in VENUES for i in INSTRUMENTS}
    envelopes: list[list[MarketEvent]] = []
    pending: dict[tuple[str, str], list[MarketEvent]] = {}
    n = 0
    for step in range(seconds * 1000 // ENVELOPE_SPAN_MS):
        ts0 = t0 + step * ENVELOPE_SPAN_MS
        for _ in range(rate * ENVELOPE_SPAN_MS // 1000):
            asset = rng.choice(list(ASSETS))
            price[asset] *= math.exp(rng.gauss(0, 2e-4))
            ts = ts0 + rng.randrange(ENVELOPE_SPAN_MS)
            event = _event(rng, asset, price[asset], oi, ts=ts, n=n)
            n += 1
            key = (type(event).__name__, asset)
            pending.setdefault(key, []).append(event)
            if len(pending[key]) >= ENVELOPE_EVENTS:
                envelopes.append(pending.pop(key))
        envelopes += [sorted(b, key=lambda e: e.ts_event) for b in pending.values()]
        pending.clear()
    return Stream(envelopes, n, seconds * 1000)


def _event(
    rng: random.Random,
    asset: str,
    p: float,
    oi: dict[tuple[str, Venue, str], float],
    *,
    ts: int,
    n: int,
) -> MarketEvent:
    venue = rng.choice(VENUES)
    inst = rng.choice(INSTRUMENTS)
    common: dict[str, Any] = {
        "venue": venue,
        "symbol": f"{asset}{inst}",
        "instrument": f"{asset}-{inst}",
        "asset": asset,
        "ts_event": ts,
        "ts_recv": ts + 20,
        "event_id": f"e{n}",
    }
    roll = rng.random()
    if roll < 0.45:
        return MarkPrice(mark_price=p, funding_rate=1e-4, **common)
    if roll < 0.90:
        usd = rng.lognormvariate(9.5, 1.2)
        side = Side.LONG if rng.random() < 0.5 else Side.SHORT
        return Liquidation(
            side=side,
            price=p * (0.999 if side is Side.LONG else 1.001),
            qty=usd / p,
            notional_usd=usd,
            completeness=Completeness.COMPLETE,
            **common,
        )
    key = (asset, venue, inst)
    oi[key] *= math.exp(rng.gauss(0, 1e-3))
    return OpenInterest(oi_base=oi[key], oi_usd=oi[key] * p, **common)


# --- the naive baseline -------------------------------------------------------------------------


class NaiveEngine:
    """The same core work done per event with dicts and loops, no batching, no NumPy."""

    TAUS_MS = (60_000.0, 300_000.0, 3_600_000.0)
    TIERS = ((5.0, 0.15), (10.0, 0.30), (25.0, 0.25), (50.0, 0.20), (100.0, 0.10))

    def __init__(self, bucket_bp: float = 10.0) -> None:
        self.step = math.log1p(bucket_bp / 10_000)
        self.realized: dict[str, list[dict[tuple[int, int], float]]] = {}
        self.decayed_at: dict[str, int] = {}
        self.levels: dict[str, dict[tuple[int, int], float]] = {}
        self.last_oi: dict[tuple[str, str, str], float] = {}
        self.window: dict[str, deque[tuple[int, float]]] = {}
        self.price: dict[str, float] = {}
        self.signals = 0

    def bucket(self, price: float) -> int:
        return math.floor(math.log(price) / self.step)

    def process(self, event: MarketEvent) -> None:
        if isinstance(event, Liquidation):
            self._liquidation(event)
        elif isinstance(event, MarkPrice):
            self._mark(event)
        else:
            self._open_interest(event)

    def _liquidation(self, e: Liquidation) -> None:
        layers = self.realized.setdefault(e.asset, [{}, {}, {}])
        last = self.decayed_at.get(e.asset, e.ts_event)
        dt = max(0, e.ts_event - last)
        key = (0 if e.side is Side.LONG else 1, self.bucket(e.price))
        for tau, layer in zip(self.TAUS_MS, layers, strict=True):
            factor = math.exp(-dt / tau)
            for k in layer:
                layer[k] *= factor
            layer[key] = layer.get(key, 0.0) + e.notional_usd
        self.decayed_at[e.asset] = max(last, e.ts_event)
        window = self.window.setdefault(e.asset, deque())
        window.append((e.ts_event, e.notional_usd))
        while window and window[0][0] < e.ts_event - 10_000:
            window.popleft()
        if sum(x for _, x in window) > 2_000_000:
            self.signals += 1

    def _mark(self, e: MarkPrice) -> None:
        self.price[e.asset] = e.mark_price
        here = self.bucket(e.mark_price)
        levels = self.levels.get(e.asset, {})
        for side, b in list(levels):
            if (side == 0 and b >= here) or (side == 1 and b <= here):
                del levels[(side, b)]

    def _open_interest(self, e: OpenInterest) -> None:
        key = (e.venue.value, e.instrument, e.asset)
        before = self.last_oi.get(key)
        self.last_oi[key] = e.oi_base
        p = self.price.get(e.asset)
        if before is None or p is None:
            return
        delta = (e.oi_base - before) * p
        levels = self.levels.setdefault(e.asset, {})
        if delta <= 0:
            total = sum(levels.values()) or 1.0
            keep = max(0.0, 1 + delta / total)
            for k in levels:
                levels[k] *= keep
            return
        for lev, w in self.TIERS:
            for side, mult in ((0, 1 - 1 / lev + 0.005), (1, 1 + 1 / lev - 0.005)):
                k = (side, self.bucket(p * mult))
                levels[k] = levels.get(k, 0.0) + delta * w / 2


# --- the benchmark ------------------------------------------------------------------------------


def _time_engine(envelopes: list[list[MarketEvent]]) -> tuple[float, int]:
    from processors.engine import Engine, EngineConfig  # noqa: PLC0415

    engine = Engine(EngineConfig.default())
    outputs = 0
    started = time.process_time()
    for events in envelopes:
        outputs += len(engine.process(events))
    return time.process_time() - started, outputs


def _time_naive(envelopes: list[list[MarketEvent]]) -> float:
    naive = NaiveEngine()
    started = time.process_time()
    for events in envelopes:
        for event in events:
            naive.process(event)
    return time.process_time() - started


def _prefix(stream: Stream, events: int) -> list[list[MarketEvent]]:
    """The stream's first envelopes holding at least ``events`` events."""
    out: list[list[MarketEvent]] = []
    n = 0
    for env in stream.envelopes:
        if n >= events:
            break
        out.append(env)
        n += len(env)
    return out


def run_embedded(
    seconds: int = 30, rate: int = 40_000, naive_events: int = 100_000
) -> dict[str, Any]:
    """``rate`` events/s of market for ``seconds`` through the engine; the naive baseline is
    slow, so both run the stream's first ``naive_events`` events for the speed-up."""
    stream = synthetic_stream(seconds, rate)
    with quiet_engine_logs():
        engine_s, outputs = _time_engine(stream.envelopes)
        prefix = _prefix(stream, naive_events)
        n_prefix = sum(len(e) for e in prefix)
        prefix_s, _ = _time_engine(prefix)
    naive_s = _time_naive(prefix)
    engine_rate = stream.events / engine_s
    naive_rate = n_prefix / naive_s
    prefix_rate = n_prefix / prefix_s
    result: dict[str, Any] = {
        "events": stream.events,
        "envelopes": len(stream.envelopes),
        "simulated_s": stream.span_ms / 1000,
        "engine_events_s": engine_rate,
        "engine_outputs": outputs,
        "prefix_events": n_prefix,
        "engine_prefix_events_s": prefix_rate,
        "naive_events_s": naive_rate,
        "speedup": prefix_rate / naive_rate,
        "target_events_s": TARGET_EVENTS_S,
        "passed": engine_rate >= TARGET_EVENTS_S,
        "engine_build": engine_build(),
    }
    result["report"] = (
        f"engine (embedded, one core, CPU time, {result['engine_build']}): {stream.events:,} "
        f"events in "
        f"{len(stream.envelopes):,} envelopes, {len(ASSETS)} assets × "
        f"{len(VENUES) * len(INSTRUMENTS)} instruments, {seconds} s of market at {rate:,} "
        f"events/s\n"
        f"  Engine.process   {engine_rate:>10,.0f} events/s  ({outputs:,} outputs)\n"
        f"  first {n_prefix:,} events: Engine.process {prefix_rate:,.0f} events/s, naive "
        f"per-event pure Python {naive_rate:,.0f} events/s ({prefix_rate / naive_rate:.1f}×)\n"
        f"  target ≥ {TARGET_EVENTS_S:,} events/s: " + ("met" if result["passed"] else "NOT met")
    )
    print(result["report"])
    return result
