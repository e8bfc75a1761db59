"""A stress day's worth of market events for the worker benchmark, generated directly as events.

20 assets × 10 instruments (5 venues, linear and inverse perpetuals) = 200 instruments.

The mix follows a stress day such as 10 Oct 2025 (about 1.6 M accounts liquidated in 24 h across
venues, i.e. ~20/s on average and a few hundred per second in the worst hours), as the producers
see it: price streams dominate. Each instrument sends a mark price every 250 ms (venues push
ticker/mark updates every 100 ms to 1 s; the producers thin them to changes of ≥ 1 bp, which on
a falling market passes most of them) and open interest every second (Bybit/Deribit tickers
carry it at 100 ms; OKX pushes every few seconds; Binance is polled). Liquidations come at 15/s
per asset (300/s over 20 assets), three times that in the first 20 s of every sell-off leg,
mostly on the side the price falls through. That gives ~1,000 marks, ~200 OI and ~370
liquidations per second: liquidations are about a quarter of the events.

Events are grouped per (asset, kind) into envelopes as a busy producer seals them (at most a few
hundred events or 2 s of event time), and ordered by seal time. Seeded: the same load on every
run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from liqwatch.schema import (
    Completeness,
    Envelope,
    EventKind,
    Liquidation,
    MarketEvent,
    MarkPrice,
    OpenInterest,
    Side,
    Venue,
)

ASSETS = (
    ("BTC", 112_000.0),
    ("ETH", 4_100.0),
    ("SOL", 220.0),
    ("XRP", 2.8),
    ("DOGE", 0.25),
    ("BNB", 1_200.0),
    ("ADA", 0.8),
    ("AVAX", 28.0),
    ("LINK", 22.0),
    ("DOT", 4.1),
    ("LTC", 130.0),
    ("TRX", 0.33),
    ("TON", 2.9),
    ("SUI", 3.4),
    ("APT", 5.2),
    ("ARB", 0.45),
    ("OP", 0.7),
    ("NEAR", 2.9),
    ("ATOM", 4.0),
    ("FIL", 2.1),
)
VENUES = (Venue.BINANCE, Venue.BYBIT, Venue.OKX, Venue.DERIBIT, Venue.BITMEX)
COMPLETENESS = {Venue.BINANCE: Completeness.SAMPLED, Venue.OKX: Completeness.PARTIAL}
START_MS = 1_760_130_000_000  # 2025-10-10 21:00 UTC
BURST = 3.0  # liquidation rate in the first 20 s of a sell-off leg
BURST_SHARE = 2 / 3 * 20 / 120  # share of the seconds that are such


@dataclass(frozen=True)
class StressLoad:
    events: int = 1_500_000
    assets: int = 20
    mark_every_ms: int = 250  # per instrument
    oi_every_ms: int = 1_000  # per instrument
    liquidations_per_s: float = 15.0  # per asset, outside bursts
    envelope_events: int = 300
    # a producer seals by time too: without this, a 300-event mark price envelope would span
    # 30 s of event time against 1 s for liquidations, which no live producer sends
    envelope_span_ms: int = 2_000
    seed: int = 20251010

    @property
    def instruments(self) -> int:
        return self.assets * len(VENUES) * 2

    @property
    def events_per_s(self) -> float:
        per_instrument = 1000 / self.mark_every_ms + 1000 / self.oi_every_ms
        bursts = 1 + (BURST - 1) * BURST_SHARE
        return self.instruments * per_instrument + self.assets * self.liquidations_per_s * bursts

    @property
    def liquidation_share(self) -> float:
        """Expected fraction of the events that are liquidations."""
        liquidations = self.assets * self.liquidations_per_s * (1 + (BURST - 1) * BURST_SHARE)
        return liquidations / self.events_per_s

    @property
    def span_ms(self) -> int:
        return int(self.events / self.events_per_s * 1000)


@dataclass
class _Instrument:
    venue: Venue
    name: str
    oi_base: float


class _AssetMarket:
    """One asset's price path (a sell-off with noise) and its instruments."""

    def __init__(self, asset: str, price: float, rnd: random.Random) -> None:
        self.asset = asset
        self.price = price
        self.rnd = rnd
        self.instruments = [
            _Instrument(v, f"{asset}-{quote}", rnd.uniform(2e6, 2e7) / price)
            for v in VENUES
            for quote in ("USDT-PERP", "USD-INVERSE")
        ]

    def step(self, dt_ms: int, drift_bp_per_s: float) -> None:
        noise = self.rnd.gauss(0.0, 4.0 * math.sqrt(dt_ms / 1000))
        self.price *= 1 + (drift_bp_per_s * dt_ms / 1000 + noise) / 10_000


def _mark(m: _AssetMarket, inst: _Instrument, ts: int) -> MarkPrice:
    return MarkPrice(
        venue=inst.venue,
        symbol=inst.name,
        instrument=inst.name,
        asset=m.asset,
        mark_price=m.price * (1 + m.rnd.uniform(-2e-4, 2e-4)),
        funding_rate=0.0001,
        ts_event=ts,
        ts_recv=ts + 40,
        event_id=f"{inst.name}:{inst.venue}:mark:{ts}",
    )


def _oi(m: _AssetMarket, inst: _Instrument, ts: int) -> OpenInterest:
    inst.oi_base *= 1 + m.rnd.uniform(-0.002, 0.003)
    return OpenInterest(
        venue=inst.venue,
        symbol=inst.name,
        instrument=inst.name,
        asset=m.asset,
        oi_base=inst.oi_base,
        oi_usd=inst.oi_base * m.price,
        ts_event=ts,
        ts_recv=ts + 60,
        event_id=f"{inst.name}:{inst.venue}:oi:{ts}",
    )


def _liquidation(m: _AssetMarket, ts: int, n: int, falling: bool) -> Liquidation:
    inst = m.rnd.choice(m.instruments)
    long_share = 0.85 if falling else 0.3
    side = Side.LONG if m.rnd.random() < long_share else Side.SHORT
    usd = min(m.rnd.lognormvariate(math.log(8_000), 1.2), 2_000_000)
    price = m.price * (1 - 5e-4 if side is Side.LONG else 1 + 5e-4)
    return Liquidation(
        venue=inst.venue,
        symbol=inst.name,
        instrument=inst.name,
        asset=m.asset,
        side=side,
        price=price,
        avg_price=m.price,
        qty=usd / m.price,
        notional_usd=usd,
        completeness=COMPLETENESS.get(inst.venue, Completeness.COMPLETE),
        ts_event=ts,
        ts_recv=ts + 30,
        event_id=f"{inst.name}:{inst.venue}:liq:{ts}:{n}",
    )


def _asset_events(m: _AssetMarket, load: StressLoad) -> Iterator[tuple[int, MarketEvent]]:
    """(kind rank, event) in time order, second by second."""
    n = 0
    for second in range(load.span_ms // 1000):
        t0 = START_MS + second * 1000
        falling = (second // 120) % 3 != 2  # two minutes of sell-off, one of relief
        m.step(1000, -3.0 if falling else 2.0)
        for inst in m.instruments:
            for slot in range(0, 1000, load.mark_every_ms):
                yield 0, _mark(m, inst, t0 + slot + m.rnd.randrange(load.mark_every_ms))
            for slot in range(0, 1000, load.oi_every_ms):
                yield 1, _oi(m, inst, t0 + slot + m.rnd.randrange(load.oi_every_ms))
        burst = BURST if falling and second % 120 < 20 else 1.0
        for _ in range(int(m.rnd.expovariate(1 / (load.liquidations_per_s * burst)) + 0.5)):
            n += 1
            yield 2, _liquidation(m, t0 + m.rnd.randrange(1000), n, falling)


KINDS = (EventKind.MARK_PRICE, EventKind.OPEN_INTEREST, EventKind.LIQUIDATION)


def stress_envelopes(load: StressLoad) -> list[Envelope]:
    """The load's envelopes, ordered by seal time (``ts_flush``) as a producer sends them."""
    rnd = random.Random(load.seed)
    out: list[Envelope] = []
    seq = 0
    for asset, price in ASSETS[: load.assets]:
        market = _AssetMarket(asset, price, random.Random(rnd.random()))
        pending: dict[int, list[MarketEvent]] = {0: [], 1: [], 2: []}
        for rank, event in _asset_events(market, load):
            batch = pending[rank]
            if batch and event.ts_recv - batch[0].ts_recv >= load.envelope_span_ms:
                seq += 1
                out.append(_seal(asset, rank, batch, seq))
                batch = pending[rank] = []
            batch.append(event)
            if len(batch) >= load.envelope_events:
                seq += 1
                out.append(_seal(asset, rank, batch, seq))
                pending[rank] = []
        for rank, batch in pending.items():
            if batch:
                seq += 1
                out.append(_seal(asset, rank, batch, seq))
    out.sort(key=lambda e: (e.ts_flush, e.asset, e.kind.value))
    return out


def _seal(asset: str, rank: int, events: list[MarketEvent], seq: int) -> Envelope:
    return Envelope(
        kind=KINDS[rank],
        asset=asset,
        producer="bench:stress",
        seq=seq,
        ts_flush=max(e.ts_recv for e in events) + 50,
        events=events,
    )
