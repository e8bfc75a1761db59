"""Every SQL recipe in docs/sql.md, run as printed against known data on both backends.

The SQL is read from the document, and for the deterministic recipes the example output printed
under the recipe must be exactly what ``liqwatch sql`` prints, so the docs cannot drift.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from liqwatch.schema import (
    AlertKind,
    AlertStatus,
    CascadeSignal,
    HeatmapSnapshot,
    Liquidation,
    Outcome,
    Side,
    Venue,
)
from sinks.sql_cli import run_sql
from tests.sinks import factories as f
from tests.sinks.conftest import Backend

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"
_RECIPE = re.compile(r"```sql\n-- recipe: (\w+)\n(.*?)```\s*\n.*?```\n(.*?)```", re.DOTALL)


def recipes() -> dict[str, tuple[str, str]]:
    """recipe name -> (SQL, the example output printed after it)."""
    found = {m[1]: (m[2].strip(), m[3].rstrip("\n")) for m in _RECIPE.finditer(DOC.read_text())}
    assert found, "no recipes found in docs/sql.md"
    return found


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def liquidation_set() -> list[Liquidation]:
    """BTC on 2025-10-10 21:00-21:03 UTC, plus rows every recipe must leave out."""
    return [
        f.liquidation(
            1,
            venue=Venue.BINANCE,
            price=100_000.0,
            notional_usd=10_000.0,
            ts=ms("2025-10-10 21:00:05"),
        ),
        f.liquidation(
            2,
            venue=Venue.BINANCE,
            price=99_700.0,
            notional_usd=20_000.0,
            ts=ms("2025-10-10 21:01:00"),
        ),
        f.liquidation(
            3,
            venue=Venue.BYBIT,
            price=100_100.0,
            notional_usd=15_000.0,
            ts=ms("2025-10-10 21:02:00"),
        ),
        f.liquidation(
            4,
            venue=Venue.OKX,
            side=Side.SHORT,
            price=100_800.0,
            notional_usd=9_000.0,
            ts=ms("2025-10-10 21:03:00"),
        ),
        f.liquidation(
            5, asset="ETH", price=4_100.0, notional_usd=5_000.0, ts=ms("2025-10-10 21:00:00")
        ),
        f.liquidation(6, price=101_000.0, notional_usd=7_000.0, ts=ms("2025-10-11 09:00:00")),
    ]


@pytest.fixture
def history(migrated: Backend) -> Backend:
    store = migrated.store
    liqs = liquidation_set()
    store.write_events(liqs)
    store.write_events(liqs)  # a retried batch: must not change any result
    store.write_signals([*f.cascade_phases(), *_second_cascade()])
    store.write_signals(
        [_estimated(ms("2025-10-10 20:59:00")), _estimated(ms("2025-10-10 20:59:30"), shift=40)]
    )
    _alerts(migrated)
    migrated.client.database = migrated.database  # recipes name tables without a database
    return migrated


def _second_cascade() -> list[CascadeSignal]:
    """A smaller short cascade: price rose 2 % while shorts were forced out."""
    phases = f.cascade_phases(
        "cascade:BTC:short:1760140000000", start=ms("2025-10-11 00:00:00"), total=12e6
    )
    return [
        msgspec.structs.replace(p, side=Side.SHORT, price_now=p.price_start * 1.02) for p in phases
    ]


def _estimated(ts: int, shift: int = 0) -> HeatmapSnapshot:
    """Predicted long levels in buckets 0-1 and short levels in bucket 7 of a 10 bp grid from
    100,000 (the second snapshot of the hour, shifted away, must be ignored)."""
    return HeatmapSnapshot(
        asset="BTC",
        ts=ts,
        model="liqwatch-heatmap/1.0",
        grid_origin=100_000.0,
        bucket_bp=10.0,
        mark_price=100_500.0,
        realized_long=[],
        realized_short=[],
        estimated_long=[(0 + shift, 12_000_000.0), (1 + shift, 7_500_000.0)],
        estimated_short=[(7 + shift, 3_000_000.0)],
    )


def _alerts(backend: Backend) -> None:
    store = backend.store
    cascade_ids = [f"cascade:BTC:long:{i}" for i in range(3)]
    alerts = [f.alert(a, status=AlertStatus.ENDED) for a in cascade_ids]
    approach = f.alert("approach:BTC:long:1", kind=AlertKind.APPROACH)
    store.write_alerts([*alerts, approach])
    store.write_alerts([f.alert(cascade_ids[0])])  # an old open version replayed late
    outcomes = [
        (cascade_ids[0], _outcome(1.7, 0.3)),
        (cascade_ids[1], _outcome(1.5, 0.4)),
        (cascade_ids[2], _outcome(0.4, 1.8)),
        (approach.alert_id, f.outcome(False, 15)),
    ]
    store.write_outcomes(outcomes, computed_at=f.T0)
    store.write_outcomes(outcomes[:1], computed_at=f.T0 + 1)  # recomputed: replaces, not adds


def _outcome(favourable: float, adverse: float) -> Outcome:
    return Outcome(
        horizon_min=60,
        price_after=110_000.0,
        max_favourable_pct=favourable,
        max_adverse_pct=adverse,
        hit=favourable > adverse,
    )


def _run(backend: Backend, name: str) -> tuple[str, str]:
    sql, example = recipes()[name]
    return run_sql(backend.client, sql, "table"), example


@pytest.mark.parametrize(
    "name", ["heatmap", "top_cascades", "by_venue_side", "alert_hit_rate", "estimated_vs_realized"]
)
def test_recipe_prints_the_documented_output(history: Backend, name: str) -> None:
    printed, example = _run(history, name)
    # The table printer adds a row count footer; the docs show the table itself.
    assert printed.rsplit("\n", 1)[0] == example


def test_heatmap_values(history: Backend) -> None:
    sql, _ = recipes()["heatmap"]
    rows = history.client.query(sql).result_rows
    assert [(r[1], r[2], r[5], r[6]) for r in rows] == [
        ("long", 11515, 45_000.0, 3),  # 99,700, 100,000 and 100,100 share the 0.5 % band
        ("short", 11525, 9_000.0, 1),
    ]


def test_by_venue_side_counts_each_event_once(history: Backend) -> None:
    sql, _ = recipes()["by_venue_side"]
    rows = history.client.query(sql).result_rows
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("binance", "long", 2, 30_000.0),
        ("bybit", "long", 1, 15_000.0),
        ("okx", "short", 1, 9_000.0),
    ]


def test_top_cascades_orders_by_notional(history: Backend) -> None:
    sql, _ = recipes()["top_cascades"]
    rows = history.client.query(sql).result_rows
    assert [(r[0], r[5], r[6], r[10]) for r in rows] == [
        ("cascade:BTC:long:1760130000000", 58.0, 1020, "ended"),
        ("cascade:BTC:short:1760140000000", 12.0, 1020, "ended"),
    ]
    assert rows[0][8] == -1.52  # 111,500 -> 109,800


def test_alert_hit_rate_uses_final_versions(history: Backend) -> None:
    sql, _ = recipes()["alert_hit_rate"]
    rows = history.client.query(sql).result_rows
    assert rows == [("approach", 15, 1, 0, 0.0, 0.2, 1.9), ("cascade", 60, 3, 2, 66.7, 1.2, 0.83)]


def test_estimated_vs_realized(history: Backend) -> None:
    sql, _ = recipes()["estimated_vs_realized"]
    rows = history.client.query(sql).result_rows
    # Longs: 10k at 100,000 (bucket 0) and 15k at 100,100 (bucket 1) were predicted, 20k at
    # 99,700 (bucket -4) was not. Shorts: 9k at 100,800 (bucket 7) was predicted.
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        ("long", 19_500_000.0, 45_000.0, 25_000.0, 55.6),
        ("short", 3_000_000.0, 9_000.0, 9_000.0, 100.0),
    ]


def test_coverage_and_staleness(migrated: Backend) -> None:
    now = int(time.time() * 1000)
    store = migrated.store
    store.write_events(
        [
            f.liquidation(1, venue=Venue.BINANCE, ts=now - 1_000),
            f.liquidation(2, venue=Venue.BINANCE, ts=now - 30_000),
            f.liquidation(3, venue=Venue.OKX, ts=now - 600_000),
            f.liquidation(4, venue=Venue.OKX, ts=now - 7_200_000),  # seen today, not this hour
            *[f.mark_price(i, venue=Venue.BINANCE, ts=now - 1_000 * (i + 1)) for i in range(3)],
            f.open_interest(1, venue=Venue.BYBIT, ts=now - 120_000),
        ]
    )
    migrated.client.database = migrated.database
    sql, _ = recipes()["coverage"]
    rows = migrated.client.query(sql).result_rows
    by_venue = {r[0]: r for r in rows}
    assert [r[0] for r in rows] == ["okx", "bybit", "binance"]  # stalest first
    assert 599 <= by_venue["okx"][2] < 660
    assert 119 <= by_venue["bybit"][2] < 180
    assert 0.9 <= by_venue["binance"][2] < 60
    assert by_venue["binance"][3:] == (2, 3, 0, "sampled")
    assert by_venue["okx"][3:] == (1, 0, 0, "partial")
    assert by_venue["bybit"][3:6] == (0, 0, 1)
    printed = run_sql(migrated.client, sql, "table")
    assert printed.splitlines()[0].split() == [
        "venue",
        "last_event",
        "staleness_s",
        "liquidations_1h",
        "mark_prices_1h",
        "oi_samples_1h",
        "completeness",
    ]


def test_every_documented_recipe_is_tested() -> None:
    assert set(recipes()) == {
        "heatmap",
        "top_cascades",
        "by_venue_side",
        "alert_hit_rate",
        "estimated_vs_realized",
        "coverage",
    }
