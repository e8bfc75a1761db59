"""A seeded random market for property tests: envelopes of marks, OI and liquidations."""

from __future__ import annotations

import random

from liqwatch.schema import Completeness, MarketEvent, Side, Venue
from tests.engine.events import T0, liq, mark, oi


def random_envelopes(seed: int, seconds: int = 240) -> list[list[MarketEvent]]:
    """Marks every 500 ms per venue, OI every 2 s, liquidation bursts with a sell-off."""
    rng = random.Random(seed)
    price = 100_000.0
    base = {Venue.BYBIT: 5000.0, Venue.BINANCE: 8000.0}
    crash_at = rng.randrange(seconds // 3, max(seconds - 45, seconds // 3 + 1))
    envelopes: list[list[MarketEvent]] = []
    for s in range(seconds):
        t = T0 + s * 1000
        crashing = crash_at <= s < crash_at + 15
        for half in (0, 500):
            price *= 1 + rng.gauss(-0.002 if crashing else 0.0, 0.0004)
            envelopes.append([mark(t + half + 3, price, venue=v) for v in base])
        if s % 2 == 0:
            for v in base:
                base[v] += rng.gauss(2.0, 10.0) - (40 if crashing else 0)
            envelopes.append([oi(t + 11, b, price, venue=v) for v, b in base.items()])
        n = rng.randrange(40, 80) if crashing else (1 if rng.random() < 0.2 else 0)
        liqs = [
            liq(
                t + rng.randrange(1000),
                Side.LONG if crashing or rng.random() < 0.5 else Side.SHORT,
                price * (1 + rng.gauss(0, 0.001)),
                rng.lognormvariate(11, 0.8),
                venue=rng.choice([Venue.BYBIT, Venue.OKX, Venue.BINANCE]),
                completeness=Completeness.COMPLETE,
            )
            for _ in range(n)
        ]
        if liqs:
            envelopes.append(sorted(liqs, key=lambda e: e.ts_event))
    return envelopes
