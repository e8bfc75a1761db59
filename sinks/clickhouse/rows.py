"""Records -> column-oriented rows for each ClickHouse table (column names = struct fields).

Times stay int milliseconds: clickhouse-connect writes ints into ``DateTime64(3)`` as raw
ticks, so no datetime objects are built on the hot path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import msgspec

from liqwatch import codec
from liqwatch.schema import (
    Alert,
    AlertUpdate,
    CascadeSignal,
    ClusterSnapshot,
    DeadLetter,
    Delivery,
    HeatmapSnapshot,
    Layer,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Outcome,
    Side,
    SweepSignal,
)

Column = list[Any]

_NO_OUTCOME = (None, None, None, None, None)


@dataclass(frozen=True)
class TableRows:
    """Rows for one table, column-oriented: ``columns[i]`` holds ``names[i]`` for every row."""

    table: str
    names: tuple[str, ...]
    columns: list[Column]

    @property
    def count(self) -> int:
        return len(self.columns[0]) if self.columns else 0


def field_names(struct_type: type[msgspec.Struct]) -> tuple[str, ...]:
    return tuple(f.name for f in msgspec.structs.fields(struct_type))


def columns_of(records: Sequence[Any], names: Iterable[str]) -> list[Column]:
    return [list(map(attrgetter(name), records)) for name in names]


# One getter per column, made once: the hot path builds each column in a single C-level pass.
Getters = tuple[tuple[str, ...], tuple[Callable[[Any], Any], ...]]
_GETTERS: dict[type[msgspec.Struct], Getters] = {}


def _getters(struct_type: type[msgspec.Struct]) -> Getters:
    found = _GETTERS.get(struct_type)
    if found is None:
        names = field_names(struct_type)
        found = _GETTERS[struct_type] = (names, tuple(attrgetter(n) for n in names))
    return found


def _plain(table: str, struct_type: type[msgspec.Struct], records: Sequence[Any]) -> TableRows:
    names, getters = _getters(struct_type)
    return TableRows(table, names, [list(map(get, records)) for get in getters])


LIQUIDATION_COLUMNS = field_names(Liquidation)
OPEN_INTEREST_COLUMNS = field_names(OpenInterest)
MARK_PRICE_COLUMNS = field_names(MarkPrice)


def liquidation_rows(events: Sequence[Liquidation]) -> TableRows:
    return _plain("liquidations", Liquidation, events)


def open_interest_rows(events: Sequence[OpenInterest]) -> TableRows:
    return _plain("open_interest", OpenInterest, events)


def mark_price_rows(events: Sequence[MarkPrice]) -> TableRows:
    return _plain("mark_price", MarkPrice, events)


def dead_letter_rows(letters: Sequence[DeadLetter]) -> TableRows:
    return _plain("dead_letters", DeadLetter, letters)


def delivery_rows(deliveries: Sequence[Delivery]) -> TableRows:
    return _plain("deliveries", Delivery, deliveries)


def alert_update_rows(updates: Sequence[AlertUpdate]) -> TableRows:
    return _plain("alert_updates", AlertUpdate, updates)


ALERT_COLUMNS = field_names(Alert)


def alert_rows(alerts: Sequence[Alert]) -> TableRows:
    columns = columns_of(alerts, ALERT_COLUMNS)
    by_name = dict(zip(ALERT_COLUMNS, columns, strict=True))
    by_name["venues"] = [
        [(v.venue, v.completeness, v.stale, v.staleness_s) for v in a.venues] for a in alerts
    ]
    by_name["outcome"] = [_outcome_tuple(a.outcome) for a in alerts]
    return TableRows("alerts", ALERT_COLUMNS, [by_name[n] for n in ALERT_COLUMNS])


def _outcome_tuple(outcome: Outcome | None) -> tuple[Any, ...]:
    if outcome is None:
        return _NO_OUTCOME
    return (
        outcome.horizon_min,
        outcome.price_after,
        outcome.max_favourable_pct,
        outcome.max_adverse_pct,
        outcome.hit,
    )


OUTCOME_COLUMNS = (
    "alert_id",
    "horizon_min",
    "price_after",
    "max_favourable_pct",
    "max_adverse_pct",
    "hit",
    "computed_at",
)


def outcome_rows(outcomes: Sequence[tuple[str, Outcome]], computed_at: int) -> TableRows:
    rows = [
        (
            alert_id,
            o.horizon_min,
            o.price_after,
            o.max_favourable_pct,
            o.max_adverse_pct,
            o.hit,
            computed_at,
        )
        for alert_id, o in outcomes
    ]
    return _transposed("alert_outcomes", OUTCOME_COLUMNS, rows)


SIGNAL_COLUMNS = (
    "kind",
    "asset",
    "ts",
    "model",
    "side",
    "band_lo",
    "band_hi",
    "notional_usd",
    "payload",
)

SignalRecord = ClusterSnapshot | SweepSignal | CascadeSignal


def signal_kind(signal: msgspec.Struct) -> str:
    return str(type(signal).__struct_config__.tag)


def _signal_row(s: SignalRecord) -> tuple[Any, ...]:
    """The columns every signal kind shares; band and notional where the kind has them."""
    if isinstance(s, CascadeSignal):
        band_lo, band_hi, usd = None, None, s.total_notional_usd
    elif isinstance(s, SweepSignal):
        band_lo, band_hi, usd = s.band_lo, s.band_hi, s.estimated_notional_usd
    else:
        band_lo, band_hi, usd = s.band_lo, s.band_hi, s.notional_usd
    payload = codec.encode(s).decode()
    return (signal_kind(s), s.asset, s.ts, s.model, s.side, band_lo, band_hi, usd, payload)


def signal_rows(signals: Sequence[SignalRecord]) -> TableRows:
    return _transposed("signals", SIGNAL_COLUMNS, [_signal_row(s) for s in signals])


def _transposed(table: str, names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> TableRows:
    if not rows:
        return TableRows(table, names, [[] for _ in names])
    return TableRows(table, names, [list(c) for c in zip(*rows, strict=True)])


HEATMAP_COLUMNS = (
    "asset",
    "ts",
    "model",
    "layer",
    "side",
    "bucket",
    "price",
    "notional_usd",
    "grid_origin",
    "bucket_bp",
    "mark_price",
)


def bucket_price(grid_origin: float, bucket_bp: float, bucket: int) -> float:
    """Lower price of grid bucket ``bucket`` (see HeatmapSnapshot)."""
    return grid_origin * math.exp(bucket * math.log1p(bucket_bp / 10_000))


def heatmap_rows(snapshots: Sequence[HeatmapSnapshot]) -> TableRows:
    rows: list[tuple[Any, ...]] = []
    for snap in snapshots:
        for layer, side, cells in _layers(snap):
            rows.extend(
                (
                    snap.asset,
                    snap.ts,
                    snap.model,
                    layer,
                    side,
                    bucket,
                    bucket_price(snap.grid_origin, snap.bucket_bp, bucket),
                    usd,
                    snap.grid_origin,
                    snap.bucket_bp,
                    snap.mark_price,
                )
                for bucket, usd in cells
            )
    return _transposed("heatmap", HEATMAP_COLUMNS, rows)


def _layers(snap: HeatmapSnapshot) -> list[tuple[Layer, Side, list[tuple[int, float]]]]:
    return [
        (Layer.REALIZED, Side.LONG, snap.realized_long),
        (Layer.REALIZED, Side.SHORT, snap.realized_short),
        (Layer.ESTIMATED, Side.LONG, snap.estimated_long),
        (Layer.ESTIMATED, Side.SHORT, snap.estimated_short),
    ]
