"""Columnar views of event runs, with validation: bad events become counted dead letters.

Events arrive as typed structs; the engine works on NumPy columns. An event with a price,
size or time that cannot be used (NaN, infinite, ≤ 0) is dropped with a reason, never
silently and never by crashing the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from collections.abc import Sequence
from operator import attrgetter
from typing import Any, TypeVar

import msgspec
import numpy as np

from liqwatch.schema import Completeness, DeadLetter, Liquidation, MarkPrice, OpenInterest, Side
from processors.engine.common import BoolArray, FloatArray, IntArray

T = TypeVar("T")
E = TypeVar("E", Liquidation, MarkPrice, OpenInterest)
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
    events: Sequence[msgspec.Struct], ok: BoolArray, kind: str, reason: str
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


_LIQ = attrgetter("ts_event", "price", "notional_usd")
_FILL = attrgetter("avg_price")
_SIDE = attrgetter("side")
_COMPLETENESS = attrgetter("completeness")
_MARK = attrgetter("ts_event", "mark_price")
_OI = attrgetter("ts_event", "oi_base", "oi_usd")
_IS_SHORT = Side.SHORT.__eq__
_IS_SAMPLED = Completeness.SAMPLED.__eq__


def _table(events: list[Any], getter: attrgetter[Any], n: int) -> FloatArray:
    """Rows of numeric fields as one float array (ms timestamps are exact in float64)."""
    return np.array(list(map(getter, events)), dtype=np.float64).reshape(n, -1)


def liquidation_columns(events: list[Liquidation]) -> tuple[LiqColumns, list[DeadLetter]]:
    n = len(events)
    table = _table(events, _LIQ, n)
    ts = table[:, 0].astype(np.int64)
    usd = table[:, 2]
    fill = np.array(list(map(_FILL, events)), dtype=np.float64)  # None → NaN
    side = np.fromiter(map(_IS_SHORT, map(_SIDE, events)), bool, n).astype(np.int64)
    sampled = np.fromiter(map(_IS_SAMPLED, map(_COMPLETENESS, events)), bool, n)
    has_fill = np.isfinite(fill) & (fill > 0)
    price = np.where(has_fill, fill, table[:, 1])
    dead, ok = _split(events, _positive(price, usd) & (ts > 0), "liquidation", "bad price")
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
    table = _table(events, _MARK, n)
    ts = table[:, 0].astype(np.int64)
    price = table[:, 1]
    dead, ok = _split(events, _positive(price) & (ts > 0), "mark_price", "bad mark price")
    idx = _order(ts, ok)
    return MarkColumns(events=_take(events, idx), ts=ts[idx], price=price[idx]), dead


def oi_columns(events: list[OpenInterest]) -> tuple[OIColumns, list[DeadLetter]]:
    n = len(events)
    table = _table(events, _OI, n)
    ts = table[:, 0].astype(np.int64)
    base, usd = table[:, 1], table[:, 2]
    ok = np.isfinite(base) & np.isfinite(usd) & (base >= 0) & (usd >= 0) & (ts > 0)
    dead, ok = _split(events, ok, "open_interest", "bad open interest")
    idx = _order(ts, ok)
    cols = OIColumns(events=_take(events, idx), ts=ts[idx], base=base[idx], usd=usd[idx])
    return cols, dead


_VENUE = attrgetter("venue")
_INSTRUMENT = attrgetter("instrument")


def group_by_instrument(
    events: list[E],
) -> tuple[list[tuple[str, str]], IntArray, list[E]]:
    """(venue, instrument) keys in first-seen order, each event's key index, and the last
    event of each key (events are time-sorted, so the latest)."""
    pairs = list(zip(map(_VENUE, events), map(_INSTRUMENT, events), strict=True))
    latest = dict(zip(pairs, events, strict=True))
    keys = list(latest)
    if len(keys) == 1:
        codes = np.zeros(len(events), dtype=np.int64)
    else:
        index = {k: i for i, k in enumerate(keys)}
        codes = np.fromiter(map(index.__getitem__, pairs), np.int64, len(events))
    return [(str(v), i) for v, i in keys], codes, list(latest.values())
