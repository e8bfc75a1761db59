"""``liqwatch alerts review`` against a real ClickHouse server with the sink's own schema."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.client import Client

from alerts.outcomes import OutcomeTracker
from alerts.review import ReviewError, review
from alerts.samples import sample_updates
from liqwatch.schema import Alert, AlertKind, AlertStatus, Outcome, Side
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.store import Store
from tests.alerts.factories import MIN, make_alert, make_update


def _outcomes(alerts: list[Alert], moves: list[float]) -> list[tuple[str, Outcome]]:
    """Real outcomes from the tracker: each alert's price goes to price * (1 + move)."""
    tracker = OutcomeTracker(horizons_min=(15, 60))
    found: list[tuple[str, Outcome]] = []
    for alert, move in zip(alerts, moves, strict=True):
        tracker.track(alert)
        price = alert.price_at_alert * (1 + move)
        for minute in (5, 15, 60):
            for event in tracker.on_mark(alert.asset, alert.created_at + minute * MIN, price):
                found.append((alert.alert_id, event.outcome))
    return found


@pytest.mark.servers
def test_review_lists_status_outcome_and_hit_rate(
    clickhouse_client: Client, ch_database: str
) -> None:
    migrate(clickhouse_client, ch_database)
    store = Store(clickhouse_client, ch_database)
    cascade = make_alert()
    sweep = make_alert(
        alert_id="sweep:ETH:1",
        kind=AlertKind.SWEEP,
        subkind="swept",
        asset="ETH",
        side=Side.SHORT,
        price_at_alert=3_000.0,
        invalidation=2_950.0,
        created_at=cascade.created_at + 5 * MIN,
    )
    old = make_alert(alert_id="old", created_at=cascade.created_at - 10 * 24 * 60 * MIN)
    store.write_alerts([cascade, sweep, old])
    store.write_alert_updates(
        [
            *sample_updates(cascade),
            make_update(sweep, 1, status=AlertStatus.INVALIDATED, subkind="invalidated"),
        ]
    )
    # cascade (down claim) falls 1 %: hit; sweep (up claim) falls 1 %: miss
    store.write_outcomes(_outcomes([cascade, sweep], [-0.01, -0.01]))

    report = review(clickhouse_client, ch_database, since_ms=cascade.created_at - MIN, limit=10)

    lines = report.splitlines()
    rows = [line for line in lines if line.startswith("2026-")]
    assert len(rows) == 2  # the old alert is before since_ms
    assert "ETH" in rows[0] and "sweep/swept" in rows[0] and "invalidated" in rows[0]
    assert "BTC" in rows[1] and "cascade/started" in rows[1] and "ended" in rows[1]
    assert "15m hit +1.00/-0.00%" in rows[1] and "60m hit" in rows[1]
    assert "15m miss +0.00/-1.00%" in rows[0]
    rates = lines[lines.index("Hit rate per kind (alerts with a measured outcome)") + 2 :]
    assert any(r.split()[:2] == ["cascade", "15"] and r.endswith("100.0%") for r in rates)
    assert any(r.split()[:2] == ["sweep", "60"] and r.endswith("0.0%") for r in rates)

    limited = review(clickhouse_client, ch_database, since_ms=0, limit=1)
    assert len([line for line in limited.splitlines() if line.startswith("2026-")]) == 1


@pytest.mark.servers
def test_review_works_with_plain_tables_and_integer_times(
    clickhouse_client: Client, ch_database: str
) -> None:
    db = ch_database
    clickhouse_client.command(
        f"CREATE TABLE {db}.alerts (alert_id String, kind String, subkind String, asset String, "
        "side Nullable(String), severity String, price_at_alert Float64, invalidation Float64, "
        "created_at Int64, status String, title String) ENGINE = MergeTree ORDER BY alert_id"
    )
    clickhouse_client.command(
        f"CREATE TABLE {db}.alert_updates (alert_id String, seq UInt32, ts Int64, status String, "
        "subkind String, note String, price Float64) ENGINE = MergeTree ORDER BY alert_id"
    )
    clickhouse_client.command(
        f"CREATE TABLE {db}.alert_outcomes (alert_id String, horizon_min UInt32, "
        "price_after Float64, max_favourable_pct Float64, max_adverse_pct Float64, hit Bool, "
        "computed_at Int64) ENGINE = MergeTree ORDER BY alert_id"
    )
    clickhouse_client.insert(
        f"{db}.alerts",
        [
            [
                "a1",
                "approach",
                "near",
                "SOL",
                "long",
                "warning",
                150.0,
                155.0,
                1_767_225_600_000,
                "open",
                "SOL approach",
            ]
        ],
        column_names=[
            "alert_id",
            "kind",
            "subkind",
            "asset",
            "side",
            "severity",
            "price_at_alert",
            "invalidation",
            "created_at",
            "status",
            "title",
        ],
    )
    report = review(clickhouse_client, db, since_ms=1_767_225_000_000, limit=5)
    assert "2026-01-01 00:00:00  SOL" in report
    assert "pending" in report and "(no outcomes yet)" in report


@pytest.mark.servers
def test_review_refuses_bad_names_and_missing_tables(
    clickhouse_client: Client, ch_database: str
) -> None:
    with pytest.raises(ReviewError, match="not a database name"):
        review(clickhouse_client, "x; DROP TABLE y", 0)
    with pytest.raises(ReviewError, match="run the migrations"):
        review(clickhouse_client, ch_database, 0)
