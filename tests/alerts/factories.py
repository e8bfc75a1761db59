"""Alert records for tests: the sample cascade with any field replaced."""

from __future__ import annotations

from typing import Any

import msgspec

from alerts.samples import sample_cascade_alert
from liqwatch.schema import Alert, AlertStatus, AlertUpdate

MIN = 60_000


def make_alert(**changes: Any) -> Alert:
    return msgspec.structs.replace(sample_cascade_alert(), **changes)


def make_update(alert: Alert, seq: int = 1, **changes: Any) -> AlertUpdate:
    fields: dict[str, Any] = {
        "alert_id": alert.alert_id,
        "seq": seq,
        "ts": alert.created_at + seq * MIN,
        "status": AlertStatus.ENDED,
        "subkind": "ended",
        "note": "quiet for 60 s",
        "price": alert.price_at_alert * 0.99,
    }
    fields.update(changes)
    return AlertUpdate(**fields)
