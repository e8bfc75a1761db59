"""Outcomes travel on liq.alerts as AlertUpdates (subkind "outcome"); the sink keeps the update
as the audit trail and stores the outcome in alert_outcomes, where `alerts review` reads it."""

from __future__ import annotations

from liqwatch import codec
from liqwatch.outcome_records import outcome_to_update
from liqwatch.schema import AlertStatus, AlertUpdate, Outcome
from sinks.batch import Batch, OutcomeRow, Role, decode_records, row_count
from tests.sinks.conftest import Backend


def test_outcome_update_becomes_an_outcome_row(migrated: Backend) -> None:
    outcome = Outcome(
        horizon_min=15, price_after=101.5, max_favourable_pct=2.0, max_adverse_pct=-0.5, hit=True
    )
    update = outcome_to_update("cascade-BTC-long-1", AlertStatus.ENDED, outcome, 1_700_000_000_000)
    lifecycle = AlertUpdate(
        alert_id="cascade-BTC-long-1",
        seq=1,
        ts=1_700_000_000_000,
        status=AlertStatus.OPEN,
        subkind="escalated",
        note="escalated",
        price=100.0,
    )
    records = decode_records(Role.ALERTS, codec.encode(update))
    assert [type(r) for r in records] == [AlertUpdate, OutcomeRow]
    assert decode_records(Role.ALERTS, codec.encode(lifecycle)) == [lifecycle]

    batch = Batch()
    batch.add(records, row_count(records))
    for table in batch.tables():
        migrated.store.insert(table)
    rows = migrated.client.query(
        f"SELECT alert_id, horizon_min, price_after, hit FROM {migrated.database}.alert_outcomes"
    ).result_rows
    assert [tuple(r) for r in rows] == [("cascade-BTC-long-1", 15, 101.5, True)]
    kept = migrated.client.query(
        f"SELECT subkind FROM {migrated.database}.alert_updates"
    ).result_rows
    assert [r[0] for r in kept] == ["outcome"]
