"""What happened after each alert: price N minutes later and the best/worst move in between.

Event time only: an outcome is final when a mark price at or after ``created_at + horizon``
arrives, however fast a recording is replayed. Direction of the claim, in order of preference:
``details["direction"]`` (+1 up / −1 down), the side of the invalidation level (invalidation
above the alert price ⇒ the claim is "down"), the side (longs liquidated ⇒ down).
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from liqwatch.outcome_records import (
    OUTCOME_SEQ_BASE,
    OUTCOME_SUBKIND,
    outcome_from_update,
    outcome_to_update,
)
from liqwatch.schema import Alert, AlertUpdate, Outcome, Side

__all__ = [
    "OUTCOME_SEQ_BASE",
    "OUTCOME_SUBKIND",
    "OutcomeEvent",
    "OutcomeTracker",
    "claim_direction",
    "outcome_from_update",
    "outcome_update",
]

log = logging.getLogger(__name__)

VENUE_SILENCE_MS = 60_000  # switch the reference venue when it has been silent this long


@dataclass
class _Pending:
    alert: Alert
    direction: int
    horizons: list[int]  # minutes still to report, ascending
    best: float = 0.0  # max favourable move so far, %
    worst: float = 0.0  # max adverse move so far, %
    last_price: float | None = None


@dataclass
class _Reference:
    venue: str
    last_ts: int


@dataclass(frozen=True)
class OutcomeEvent:
    alert: Alert
    outcome: Outcome


@dataclass
class OutcomeTracker:
    horizons_min: Sequence[int] = (15, 60)
    max_pending: int = 50_000
    dropped: int = 0  # pending alerts evicted because of max_pending
    history_per_asset: int = 20_000  # reference marks kept: ~5 h of one venue's 1 s ticks
    _pending: OrderedDict[str, _Pending] = field(default_factory=OrderedDict)
    _reference: dict[str, _Reference] = field(default_factory=dict)
    _history: dict[str, deque[tuple[int, float]]] = field(default_factory=dict)
    _finished: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def track(self, alert: Alert) -> bool:
        """Start following an alert; False when it states no direction (nothing to measure)."""
        if alert.alert_id in self._pending:
            return True
        if alert.alert_id in self._finished:  # a redelivered alert: its outcomes are out already
            return False
        direction = claim_direction(alert)
        if direction == 0 or alert.price_at_alert <= 0:
            log.debug("alert %s has no direction; no outcome", alert.alert_id)
            return False
        horizons = sorted({int(h) for h in self.horizons_min if h > 0})
        self._pending[alert.alert_id] = _Pending(alert, direction, horizons)
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
            self.dropped += 1
        return True

    def on_mark(self, asset: str, ts_ms: int, price: float, venue: str = "") -> list[OutcomeEvent]:
        """Feed one mark price; returns outcomes whose horizon this price completed."""
        if price <= 0 or not self._from_reference(asset, ts_ms, venue):
            return []
        history = self._history.get(asset)
        if history is None:
            history = self._history[asset] = deque(maxlen=self.history_per_asset)
        history.append((ts_ms, price))
        done: list[OutcomeEvent] = []
        for alert_id, pending in list(self._pending.items()):
            alert = pending.alert
            if alert.asset != asset or ts_ms < alert.created_at:
                continue
            done += _advance(pending, ts_ms, price)
            if not pending.horizons:
                self._finish(alert_id)
        return done

    def catch_up(self, alert_id: str) -> list[OutcomeEvent]:
        """Outcomes of a just-tracked alert from marks already seen after its creation.

        Marks and alerts come from different topics: a consumer catching up a backlog (or a
        replay) may read the marks of the next hour before the alert they complete.
        """
        pending = self._pending.get(alert_id)
        if pending is None:
            return []
        done: list[OutcomeEvent] = []
        for ts_ms, price in self._history.get(pending.alert.asset, ()):
            if ts_ms >= pending.alert.created_at and pending.horizons:
                done += _advance(pending, ts_ms, price)
        if not pending.horizons:
            self._finish(alert_id)
        return done

    def _finish(self, alert_id: str) -> None:
        del self._pending[alert_id]
        self._finished[alert_id] = None
        while len(self._finished) > self.max_pending:
            self._finished.popitem(last=False)

    def note_status(self, update: AlertUpdate) -> None:
        """Keep the latest lifecycle status, so outcome records do not roll it back."""
        pending = self._pending.get(update.alert_id)
        if pending is not None and update.subkind != OUTCOME_SUBKIND:
            pending.alert = msgspec.structs.replace(pending.alert, status=update.status)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _from_reference(self, asset: str, ts_ms: int, venue: str) -> bool:
        """One venue's marks per asset, so basis between venues is not read as a move."""
        ref = self._reference.get(asset)
        if ref is None or ref.venue == venue or ts_ms - ref.last_ts > VENUE_SILENCE_MS:
            self._reference[asset] = _Reference(venue, max(ts_ms, ref.last_ts if ref else 0))
            return True
        return False


def _advance(pending: _Pending, ts_ms: int, price: float) -> list[OutcomeEvent]:
    alert = pending.alert
    done = []

    def due(strictly_after: bool) -> bool:
        if not pending.horizons:
            return False
        end = alert.created_at + pending.horizons[0] * 60_000
        return ts_ms > end if strictly_after else ts_ms == end

    while due(strictly_after=True):  # this tick is past the horizon: use the price before it
        after = pending.last_price if pending.last_price is not None else price
        done.append(OutcomeEvent(alert, _outcome(pending, pending.horizons.pop(0), after)))
    if pending.horizons:
        move = (price - alert.price_at_alert) / alert.price_at_alert * 100 * pending.direction
        pending.best = max(pending.best, move)
        pending.worst = max(pending.worst, -move)
        pending.last_price = price
    while due(strictly_after=False):
        done.append(OutcomeEvent(alert, _outcome(pending, pending.horizons.pop(0), price)))
    return done


def _outcome(pending: _Pending, horizon: int, price_after: float) -> Outcome:
    return Outcome(
        horizon_min=horizon,
        price_after=price_after,
        max_favourable_pct=round(pending.best, 6),
        max_adverse_pct=round(pending.worst, 6),
        hit=pending.best > pending.worst,
    )


def claim_direction(alert: Alert) -> int:
    """+1 if the alert claims price goes up, −1 down, 0 if it states no direction."""
    stated = alert.details.get("direction")
    if stated is not None and stated != 0:
        return 1 if stated > 0 else -1
    if alert.invalidation != alert.price_at_alert:
        return -1 if alert.invalidation > alert.price_at_alert else 1
    if alert.side is Side.LONG:
        return -1
    if alert.side is Side.SHORT:
        return 1
    return 0


def outcome_update(event: OutcomeEvent, ts_ms: int) -> AlertUpdate:
    """The record the alerter puts on ``liq.alerts`` for the sink (status unchanged)."""
    return outcome_to_update(event.alert.alert_id, event.alert.status, event.outcome, ts_ms)
