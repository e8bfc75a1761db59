"""Store round trip for every table on both backends, and dedupe of replayed writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from liqwatch.schema import AlertStatus, DeliveryStatus, Liquidation, Side
from sinks.clickhouse.rows import bucket_price
from tests.sinks import factories as f
from tests.sinks.conftest import Backend


def _ms(value: datetime) -> int:
    return round(value.replace(tzinfo=UTC).timestamp() * 1000)


def _rows(backend: Backend, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in backend.client.query(sql.format(db=backend.database)).result_rows]


def test_market_events_round_trip(migrated: Backend) -> None:
    liqs = [f.liquidation(i, ts=f.T0 + i) for i in range(3)]
    ois = [f.open_interest(i, ts=f.T0 + i) for i in range(2)]
    marks = [f.mark_price(i, ts=f.T0 + i) for i in range(3)]
    written = migrated.store.write_events([*liqs, ois[0], *marks, ois[1]])
    assert written == {"liquidations": 3, "open_interest": 2, "mark_price": 3}

    got = _rows(
        migrated,
        "SELECT venue, symbol, instrument, asset, side, price, avg_price, qty, notional_usd, "
        "completeness, toUnixTimestamp64Milli(ts_event), toUnixTimestamp64Milli(ts_recv), "
        "event_id FROM {db}.liquidations ORDER BY event_id",
    )
    back = [
        Liquidation(
            venue=row[0],
            symbol=row[1],
            instrument=row[2],
            asset=row[3],
            side=row[4],
            price=row[5],
            avg_price=row[6],
            qty=row[7],
            notional_usd=row[8],
            completeness=row[9],
            ts_event=row[10],
            ts_recv=row[11],
            event_id=row[12],
        )
        for row in got
    ]
    assert back == liqs

    oi = _rows(
        migrated,
        "SELECT venue, oi_base, oi_usd, toUnixTimestamp64Milli(ts_event), event_id "
        "FROM {db}.open_interest ORDER BY event_id",
    )
    assert oi == [(o.venue, o.oi_base, o.oi_usd, o.ts_event, o.event_id) for o in ois]

    mark = _rows(
        migrated,
        "SELECT mark_price, index_price, funding_rate, "
        "toUnixTimestamp64Milli(next_funding_time), event_id FROM {db}.mark_price "
        "ORDER BY event_id",
    )
    assert mark == [
        (m.mark_price, m.index_price, m.funding_rate, m.next_funding_time, m.event_id)
        for m in marks
    ]


def test_signals_and_heatmap_round_trip(migrated: Backend) -> None:
    snap = f.heatmap()
    cascades = f.cascade_phases()
    written = migrated.store.write_signals([f.cluster(), snap, f.sweep(), *cascades])
    assert written == {"heatmap": 8, "signals": 5}

    kinds = _rows(
        migrated,
        "SELECT kind, count(), max(notional_usd), any(band_lo) FROM {db}.signals "
        "GROUP BY kind ORDER BY kind",
    )
    assert kinds == [
        ("cascade", 3, 58e6, None),
        ("cluster", 1, 41e6, 110_500.0),
        ("sweep", 1, 41e6, 110_500.0),
    ]
    cascade = _rows(
        migrated,
        "SELECT cascade_id, last_phase, total_notional_usd, events, venues, duration_ms "
        "FROM {db}.cascades",
    )
    assert cascade == [
        (cascades[0].cascade_id, "ended", 58e6, 1020, ["binance", "bybit", "okx"], 240_000)
    ]
    sweep = _rows(migrated, "SELECT side, band_lo, confirmed, price_after FROM {db}.sweeps")
    assert sweep == [("long", 110_500.0, True, 110_420.0)]

    cells = _rows(
        migrated,
        "SELECT layer, side, bucket, price, notional_usd FROM {db}.heatmap "
        "ORDER BY layer, side, bucket",
    )
    assert ("estimated", "long", 100, bucket_price(100_000.0, 10.0, 100), 9_000_000.0) in cells
    assert len(cells) == 8
    # Bucket 100 on a 10 bp grid from 100k: 100k * 1.001^100, about 110,512.
    assert abs(bucket_price(100_000.0, 10.0, 100) - 110_511.6) < 0.1


def test_alerts_updates_outcomes_deliveries_dead_letters_round_trip(migrated: Backend) -> None:
    store = migrated.store
    alert = f.alert()
    no_side = f.alert("pressure:BTC:1760130000000", side=None)
    assert store.write_alerts([alert, no_side]) == 2
    assert (
        store.write_alert_updates(
            [f.alert_update(alert.alert_id, 1), f.alert_update(alert.alert_id, 2)]
        )
        == 2
    )
    assert (
        store.write_outcomes([(alert.alert_id, f.outcome(True, 60))], computed_at=f.T0 + 3_600_000)
        == 1
    )
    assert (
        store.write_deliveries(
            [
                f.delivery(alert.alert_id),
                f.delivery(alert.alert_id, DeliveryStatus.FAILED, f.T0 + 9_000),
            ]
        )
        == 2
    )
    assert store.write_dead_letters([f.dead_letter(0), f.dead_letter(1)]) == 2

    row = _rows(
        migrated,
        "SELECT alert_id, kind, instruments, venues, side, intensity, band_lo, notional_usd, "
        "invalidation, toUnixTimestamp64Milli(created_at), title, status, outcome, details "
        "FROM {db}.alerts FINAL ORDER BY alert_id",
    )
    assert row[0] == (
        alert.alert_id,
        "cascade",
        alert.instruments,
        [
            {"venue": "binance", "completeness": "sampled", "stale": False, "staleness_s": 0.4},
            {"venue": "okx", "completeness": "partial", "stale": True, "staleness_s": 95.0},
        ],
        "long",
        "bright",
        110_500.0,
        11_600_000.0,
        112_100.0,
        alert.created_at,
        alert.title,
        "open",
        {
            "horizon_min": None,
            "price_after": None,
            "max_favourable_pct": None,
            "max_adverse_pct": None,
            "hit": None,
        },
        alert.details,
    )
    assert row[1][0] == no_side.alert_id
    assert row[1][4] is None and row[1][5] is None

    updates = _rows(migrated, "SELECT seq, status, subkind FROM {db}.alert_updates ORDER BY seq")
    assert updates == [(1, "open", "escalated"), (2, "ended", "ended")]
    outcomes = _rows(
        migrated, "SELECT alert_id, horizon_min, hit, price_after FROM {db}.alert_outcomes"
    )
    assert outcomes == [(alert.alert_id, 60, True, 109_900.0)]
    deliveries = _rows(migrated, "SELECT status, attempts, error FROM {db}.deliveries ORDER BY ts")
    assert deliveries == [("sent", 1, ""), ("failed", 3, "HTTP 502")]
    letters = _rows(migrated, "SELECT source, reason, raw FROM {db}.dead_letters ORDER BY raw")
    assert [r[2] for r in letters] == [f.dead_letter(0).raw, f.dead_letter(1).raw]


def test_replayed_writes_leave_one_row_each(migrated: Backend) -> None:
    """At-least-once delivery: the same records written twice, in different batches."""
    store = migrated.store
    liqs = f.random_liquidations(500, seed=3)
    store.write_events(liqs[:300])
    store.write_events(liqs[200:])  # overlaps 200..299, as a replay after a crash would
    store.write_events(liqs[:300])  # the identical block again: dropped by the dedupe window
    alert = f.alert()
    store.write_alerts([alert])
    store.write_alerts([alert])
    store.write_signals(f.cascade_phases())
    store.write_signals(f.cascade_phases()[1:])

    exact = _rows(migrated, "SELECT count(), sum(notional_usd) FROM {db}.liquidations FINAL")
    assert exact[0][0] == 500
    assert abs(exact[0][1] - sum(x.notional_usd for x in liqs)) < 1e-3
    assert _rows(migrated, "SELECT count() FROM {db}.alerts FINAL") == [(1,)]
    assert _rows(migrated, "SELECT count() FROM {db}.signals FINAL") == [(3,)]
    migrated.client.command(f"OPTIMIZE TABLE {migrated.database}.liquidations FINAL")
    assert _rows(migrated, "SELECT count() FROM {db}.liquidations") == [(500,)]


def test_retried_insert_with_token_does_not_double_the_aggregates(migrated: Backend) -> None:
    liqs = f.random_liquidations(100, seed=4)
    store = migrated.store
    store.write_events(liqs, dedupe_token="batch-1")
    store.write_events(liqs, dedupe_token="batch-1")  # a retry after an ambiguous failure
    total = _rows(migrated, "SELECT sum(events), sum(notional_usd) FROM {db}.liquidations_1m")
    assert total[0][0] == 100
    assert abs(total[0][1] - sum(x.notional_usd for x in liqs)) < 1e-3


def test_alert_final_keeps_the_most_final_version(migrated: Backend) -> None:
    store = migrated.store
    final = f.alert(status=AlertStatus.ENDED, outcome=f.outcome())
    store.write_alerts([final])
    store.write_alerts([f.alert()])  # an old replayed "open" version arrives last
    got = _rows(migrated, "SELECT status, outcome.hit FROM {db}.alerts FINAL")
    assert got == [("ended", True)]


def test_minute_aggregates_follow_inserted_liquidations(migrated: Backend) -> None:
    liqs = [
        f.liquidation(1, price=100_000.0, notional_usd=1_000.0, ts=f.T0 + 1_000),
        f.liquidation(2, price=100_010.0, notional_usd=2_000.0, ts=f.T0 + 2_000),
        f.liquidation(3, price=100_000.0, notional_usd=4_000.0, ts=f.T0 + 61_000),
        f.liquidation(4, price=100_000.0, notional_usd=8_000.0, ts=f.T0 + 3_000, side=Side.SHORT),
    ]
    migrated.store.write_events(liqs)
    got = _rows(
        migrated,
        "SELECT toUnixTimestamp(ts_minute) * 1000, side, bucket_index, round(bucket, 2), "
        "sum(events), sum(notional_usd), max(max_notional_usd) FROM {db}.liquidations_1m "
        "GROUP BY ts_minute, side, bucket_index, bucket ORDER BY ts_minute, side, bucket_index",
    )
    # floor(ln(100000) / ln(1.001)) = 11518, lower price 1.001^11518 = 99931.96; 100010 is in
    # the same 10 bp bucket.
    bucket, low = 11_518, 99_931.96
    assert got == [
        (f.T0, "long", bucket, low, 2, 3_000.0, 2_000.0),
        (f.T0, "short", bucket, low, 1, 8_000.0, 8_000.0),
        (f.T0 + 60_000, "long", bucket, low, 1, 4_000.0, 4_000.0),
    ]
    assert _ms(datetime(2025, 10, 10, 21, 0)) == f.T0
