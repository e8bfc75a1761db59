"""How an alert's outcome travels on ``liq.alerts``: an AlertUpdate with subkind ``outcome``.

The alerter computes outcomes (alerts/outcomes.py) and the sink stores them in ``alert_outcomes``;
both sides use this one codec, so it lives in the core.
"""

from __future__ import annotations

from liqwatch.schema import AlertStatus, AlertUpdate, Outcome

OUTCOME_SUBKIND = "outcome"
OUTCOME_SEQ_BASE = 1000  # outcome updates use seq 1000 + horizon_min: clear of lifecycle seqs


def outcome_to_update(
    alert_id: str, status: AlertStatus, outcome: Outcome, ts_ms: int
) -> AlertUpdate:
    """The record for the sink; the alert's status is carried unchanged."""
    return AlertUpdate(
        alert_id=alert_id,
        seq=OUTCOME_SEQ_BASE + outcome.horizon_min,
        ts=ts_ms,
        status=status,
        subkind=OUTCOME_SUBKIND,
        note=f"outcome after {outcome.horizon_min} min: {'hit' if outcome.hit else 'miss'}",
        price=outcome.price_after,
        details={
            "horizon_min": float(outcome.horizon_min),
            "price_after": outcome.price_after,
            "max_favourable_pct": outcome.max_favourable_pct,
            "max_adverse_pct": outcome.max_adverse_pct,
            "hit": 1.0 if outcome.hit else 0.0,
        },
    )


def outcome_from_update(update: AlertUpdate) -> Outcome | None:
    """The inverse of ``outcome_to_update``; None if the update is not an outcome."""
    if update.subkind != OUTCOME_SUBKIND:
        return None
    d = update.details
    try:
        return Outcome(
            horizon_min=int(d["horizon_min"]),
            price_after=d["price_after"],
            max_favourable_pct=d["max_favourable_pct"],
            max_adverse_pct=d["max_adverse_pct"],
            hit=d["hit"] >= 0.5,
        )
    except KeyError:
        return None
