"""Columnar views of event runs, with validation: bad events become counted dead letters.

Events arrive as typed structs; the engine works on NumPy columns. An event with a price,
size or time that cannot be used (NaN, infinite, ≤ 0) is dropped with a reason, never
silently and never by crashing the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TypeVar

import msgspec
import numpy as np

from liqwatch.schema import Completeness, DeadLetter, Liquidation, MarkPrice, OpenInterest, Side
from processors.engine.common import LONG, SHORT, BoolArray, FloatArray, IntArray

T = TypeVar("T")
C = TypeVar("C", "LiqColumns", "MarkColumns", "OIColumns")


@dataclass(frozen=True)
class LiqColumns:
    events: list[Liquidation]
    ts: IntArray
    price: FloatArray  # fill price when given, else the order/bankruptcy price
    has_fill: BoolArray
    usd: FloatArray
    side: IntArray
    sampled: BoolArray  # from a venue that samples its liquidation feed


@dataclass(frozen=True)
class MarkColumns:
    events: list[MarkPrice]
    ts: IntArray
    price: FloatArray


@dataclass(frozen=True)
class OIColumns:
    events: list[OpenInterest]
    ts: IntArray
    base: FloatArray
    usd: FloatArray


def dead_letter(event: msgspec.Struct, kind: str, reason: str) -> DeadLetter:
    return DeadLetter(
        source="worker/engine",
        venue=str(getattr(event, "venue", "")),
        channel=kind,
        reason=reason,
        raw=msgspec.json.encode(event).decode(),
        ts_recv=int(getattr(event, "ts_recv", 0)),
    )


def _split(
    events: list[msgspec.Struct], ok: BoolArray, kind: str, reason: str
) -> tuple[list[DeadLetter], BoolArray]:
    if bool(ok.all()):
        return [], ok
    bad = [dead_letter(events[i], kind, reason) for i in np.flatnonzero(~ok)]
    return bad, ok


def _positive(*cols: FloatArray) -> BoolArray:
    ok = np.ones(cols[0].shape, dtype=bool)
    for col in cols:
        ok &= np.isfinite(col) & (col > 0)
    return ok


def _take(events: list[T], idx: IntArray) -> list[T]:
    if idx.size == len(events) and bool((idx == np.arange(idx.size)).all()):
        return events
    return [events[i] for i in idx]


def sliced(cols: C, a: int, b: int) -> C:
    """Rows [a, b) of a column set."""
    parts = {f.name: getattr(cols, f.name)[a:b] for f in fields(cols)}  # type: ignore[arg-type]
    return replace(cols, **parts)  # type: ignore[type-var]


def _order(ts: IntArray, ok: BoolArray) -> IntArray:
    """Indices of the valid events in time order (stable: ties keep arrival order)."""
    keep = np.flatnonzero(ok)
    return keep[np.argsort(ts[keep], kind="stable")]


def liquidation_columns(events: list[Liquidation]) -> tuple[LiqColumns, list[DeadLetter]]:
    n = len(events)
    ts = np.fromiter((e.ts_event for e in events), np.int64, n)
    order_px = np.fromiter((e.price for e in events), np.float64, n)
    fill = np.fromiter(
        (e.avg_price if e.avg_price is not None else np.nan for e in events), np.float64, n
    )
    usd = np.fromiter((e.notional_usd for e in events), np.float64, n)
    side = np.fromiter((LONG if e.side is Side.LONG else SHORT for e in events), np.int64, n)
    sampled = np.fromiter((e.completeness is Completeness.SAMPLED for e in events), bool, n)
    has_fill = np.isfinite(fill) & (fill > 0)
    price = np.where(has_fill, fill, order_px)
    dead, ok = _split(list(events), _positive(price, usd) & (ts > 0), "liquidation", "bad price")
    idx = _order(ts, ok)
    cols = LiqColumns(
        events=_take(events, idx),
        ts=ts[idx],
        price=price[idx],
        has_fill=has_fill[idx],
        usd=usd[idx],
        side=side[idx],
        sampled=sampled[idx],
    )
    return cols, dead


def mark_columns(events: list[MarkPrice]) -> tuple[MarkColumns, list[DeadLetter]]:
    n = len(events)
    ts = np.fromiter((e.ts_event for e in events), np.int64, n)
    price = np.fromiter((e.mark_price for e in events), np.float64, n)
    dead, ok = _split(list(events), _positive(price) & (ts > 0), "mark_price", "bad mark price")
    idx = _order(ts, ok)
    return MarkColumns(events=_take(events, idx), ts=ts[idx], price=price[idx]), dead


def oi_columns(events: list[OpenInterest]) -> tuple[OIColumns, list[DeadLetter]]:
    n = len(events)
    ts = np.fromiter((e.ts_event for e in events), np.int64, n)
    base = np.fromiter((e.oi_base for e in events), np.float64, n)
    usd = np.fromiter((e.oi_usd for e in events), np.float64, n)
    ok = np.isfinite(base) & np.isfinite(usd) & (base >= 0) & (usd >= 0) & (ts > 0)
    dead, ok = _split(list(events), ok, "open_interest", "bad open interest")
    idx = _order(ts, ok)
    cols = OIColumns(events=_take(events, idx), ts=ts[idx], base=base[idx], usd=usd[idx])
    return cols, dead
