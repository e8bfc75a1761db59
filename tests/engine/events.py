"""Builders for market events and a small driver that feeds them to an engine like a runner."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TypeVar

import msgspec

from liqwatch.schema import (
    Alert,
    AlertUpdate,
    Completeness,
    Liquidation,
    MarketEvent,
    MarkPrice,
    OpenInterest,
    Side,
    Venue,
)
from processors.engine import AssetConfig, Engine, EngineConfig, Output

T0 = 1_760_000_000_000
_ids = itertools.count()


def mark(
    t: int, price: float, *, venue: Venue = Venue.BYBIT, asset: str = "BTC", funding: float = 1e-4
) -> MarkPrice:
    return MarkPrice(
        venue=venue,
        symbol=f"{asset}USDT",
        instrument=f"{asset}-USDT-PERP",
        asset=asset,
        mark_price=price,
        funding_rate=funding,
        ts_event=t,
        ts_recv=t + 20,
        event_id=f"m{next(_ids)}",
    )


def oi(
    t: int,
    base: float,
    price: float,
    *,
    venue: Venue = Venue.BYBIT,
    asset: str = "BTC",
    instrument: str | None = None,
) -> OpenInterest:
    return OpenInterest(
        venue=venue,
        symbol=f"{asset}USDT",
        instrument=instrument or f"{asset}-USDT-PERP",
        asset=asset,
        oi_base=base,
        oi_usd=base * price,
        ts_event=t,
        ts_recv=t + 20,
        event_id=f"o{next(_ids)}",
    )


def liq(
    t: int,
    side: Side,
    price: float,
    usd: float,
    *,
    venue: Venue = Venue.BYBIT,
    asset: str = "BTC",
    completeness: Completeness = Completeness.COMPLETE,
) -> Liquidation:
    return Liquidation(
        venue=venue,
        symbol=f"{asset}USDT",
        instrument=f"{asset}-USDT-PERP",
        asset=asset,
        side=side,
        price=price,
        avg_price=price,
        qty=usd / price,
        notional_usd=usd,
        completeness=completeness,
        ts_event=t,
        ts_recv=t + 20,
        event_id=f"l{next(_ids)}",
    )


def config(**sections: dict[str, object]) -> EngineConfig:
    """The default config with some sections changed for every asset, e.g.
    ``config(cascade={"floor_usd": 1e6})``."""
    base = EngineConfig.default()

    def change(a: AssetConfig) -> AssetConfig:
        for name, values in sections.items():
            a = msgspec.structs.replace(
                a, **{name: msgspec.structs.replace(getattr(a, name), **values)}
            )
        return a

    return EngineConfig(
        assets={k: change(v) for k, v in base.assets.items()}, fallback=change(base.fallback)
    )


T = TypeVar("T")


class Driver:
    """Feeds events in envelopes (one kind per envelope, in time order) and keeps outputs."""

    def __init__(self, engine: Engine | EngineConfig | None = None) -> None:
        if isinstance(engine, EngineConfig):
            engine = Engine(engine)
        self.engine = engine or Engine(EngineConfig.default())
        self.outputs: list[Output] = []

    def feed(self, events: Iterable[MarketEvent]) -> list[Output]:
        out: list[Output] = []
        batch: list[MarketEvent] = []
        for e in sorted(events, key=lambda e: e.ts_event):
            if batch and type(batch[0]) is not type(e):
                out += self.engine.process(batch)
                batch = []
            batch.append(e)
        if batch:
            out += self.engine.process(batch)
        self.outputs += out
        return out

    def advance(self, t: int) -> list[Output]:
        out = self.engine.advance(t)
        self.outputs += out
        return out

    def alerts(self, kind: str | None = None) -> list[Alert]:
        return [o for o in self.outputs if isinstance(o, Alert) and kind in (None, o.kind)]

    def updates(self, alert_id: str | None = None) -> list[AlertUpdate]:
        return [
            o for o in self.outputs if isinstance(o, AlertUpdate) and alert_id in (None, o.alert_id)
        ]

    def of(self, type_: type[T]) -> list[T]:
        return [o for o in self.outputs if isinstance(o, type_)]


def quiet_marks(
    start: int, end: int, price: float, step: int = 1000, **kw: object
) -> list[MarkPrice]:
    return [mark(t, price, **kw) for t in range(start, end, step)]  # type: ignore[arg-type]
