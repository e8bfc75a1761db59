"""Columnar views of event runs, with validation: bad events become counted dead letters.

Events arrive as typed structs; the engine works on NumPy columns. An event with a price,
size or time that cannot be used (NaN, infinite, ≤ 0) is dropped with a reason, never
silently and never by crashing the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
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


def dead_letter(event: object, kind: str, reason: str) -> DeadLetter:
    try:
        raw = msgspec.json.encode(event).decode()
    except (TypeError, ValueError):  # not a record at all: keep what it looks like
        raw = repr(event)
    ts_recv = getattr(event, "ts_recv", 0)
    return DeadLetter(
        source="worker/engine",
        venue=str(getattr(event, "venue", "")),
        channel=kind,
        reason=reason,
        raw=raw,
        ts_recv=ts_recv if isinstance(ts_recv, int) else 0,
    )


def _split(
    events: Sequence[object], ok: BoolArray, kind: str, reason: str
) -> tuple[list[DeadLetter], BoolArray]:
    if bool(ok.all()):
        return [], ok
    bad = [dead_letter(events[i], kind, reason) for i in np.flatnonzero(~ok).tolist()]
    return bad, ok


def _positive(*cols: FloatArray) -> BoolArray:
    ok: BoolArray = np.isfinite(cols[0]) & (cols[0] > 0)
    for col in cols[1:]:
        ok &= np.isfinite(col) & (col > 0)
    return ok


def _take(events: list[T], idx: IntArray) -> list[T]:
    return list(map(events.__getitem__, idx.tolist()))


_FIELD_NAMES: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in (LiqColumns, MarkColumns, OIColumns)
}


def sliced(cols: C, a: int, b: int) -> C:
    """Rows [a, b) of a column set."""
    cls = type(cols)
    out: C = cls(*[getattr(cols, name)[a:b] for name in _FIELD_NAMES[cls]])
    return out


def _order(ts: IntArray, ok: BoolArray, all_ok: bool) -> IntArray:
    """Indices of the valid events in time order (stable: ties keep arrival order)."""
    if all_ok:  # the usual case: no selection first
        return np.argsort(ts, kind="stable")
    keep = np.flatnonzero(ok)
    return keep[np.argsort(ts[keep], kind="stable")]


_TS = attrgetter("ts_event")
_PRICE = attrgetter("price")
_USD = attrgetter("notional_usd")
_FILL = attrgetter("avg_price")
_SIDE = attrgetter("side")
_COMPLETENESS = attrgetter("completeness")
_MARK = attrgetter("mark_price")
_OI_BASE = attrgetter("oi_base")
_OI_USD = attrgetter("oi_usd")
_IS_SHORT = Side.SHORT.__eq__
_IS_SAMPLED = Completeness.SAMPLED.__eq__


def _col(events: list[Any], getter: attrgetter[Any], n: int, dtype: type = np.float64) -> Any:
    return np.fromiter(map(getter, events), dtype, n)


def liquidation_columns(events: list[Liquidation]) -> tuple[LiqColumns, list[DeadLetter]]:
    n = len(events)
    ts = _col(events, _TS, n, np.int64)
    usd = _col(events, _USD, n)
    fill = np.array(list(map(_FILL, events)), dtype=np.float64)  # None → NaN
    side = np.fromiter(map(_IS_SHORT, map(_SIDE, events)), bool, n).astype(np.int64)
    sampled = np.fromiter(map(_IS_SAMPLED, map(_COMPLETENESS, events)), bool, n)
    has_fill = np.isfinite(fill) & (fill > 0)
    price = np.where(has_fill, fill, _col(events, _PRICE, n))
    dead, ok = _split(events, _positive(price, usd) & (ts > 0), "liquidation", "bad price")
    idx = _order(ts, ok, not dead)
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
    ts = _col(events, _TS, n, np.int64)
    price = _col(events, _MARK, n)
    dead, ok = _split(events, _positive(price) & (ts > 0), "mark_price", "bad mark price")
    idx = _order(ts, ok, not dead)
    return MarkColumns(events=_take(events, idx), ts=ts[idx], price=price[idx]), dead


def oi_columns(events: list[OpenInterest]) -> tuple[OIColumns, list[DeadLetter]]:
    n = len(events)
    ts = _col(events, _TS, n, np.int64)
    base, usd = _col(events, _OI_BASE, n), _col(events, _OI_USD, n)
    ok = np.isfinite(base) & np.isfinite(usd) & (base >= 0) & (usd >= 0) & (ts > 0)
    dead, ok = _split(events, ok, "open_interest", "bad open interest")
    idx = _order(ts, ok, not dead)
    cols = OIColumns(events=_take(events, idx), ts=ts[idx], base=base[idx], usd=usd[idx])
    return cols, dead


_VENUE_INSTRUMENT = attrgetter("venue", "instrument")


def instrument_codes(events: list[E]) -> tuple[list[tuple[str, str]], list[int], list[E]]:
    """(venue, instrument) keys in first-seen order, each event's key index, and the last
    event of each key (events are time-sorted, so the latest)."""
    pairs: list[tuple[str, str]] = list(map(_VENUE_INSTRUMENT, events))
    latest = dict(zip(pairs, events, strict=True))
    if len(latest) == 1:
        codes = [0] * len(events)
    elif len(latest) == len(pairs):  # one event per instrument: codes are positions
        codes = list(range(len(pairs)))
    else:
        index = dict(zip(latest, range(len(latest)), strict=True))
        codes = list(map(index.__getitem__, pairs))
    return [(str(v), i) for v, i in latest], codes, list(latest.values())


def latest_by_instrument(events: list[E]) -> dict[tuple[str, str], E]:
    """The last event of each (venue, instrument), keys in first-seen order (the venue as
    the event holds it: a ``Venue``, equal to and hashing as its string)."""
    return dict(zip(map(_VENUE_INSTRUMENT, events), events, strict=True))
