"""Outcomes: price N minutes later and excursions, in event time, in the claim's direction."""

from __future__ import annotations

import pytest

from alerts.outcomes import (
    OUTCOME_SEQ_BASE,
    OutcomeTracker,
    claim_direction,
    outcome_from_update,
    outcome_update,
)
from liqwatch.schema import AlertStatus, Side
from tests.alerts.factories import MIN, make_alert, make_update


def test_direction_from_details_invalidation_or_side() -> None:
    assert claim_direction(make_alert()) == -1  # invalidation above price: a "down" claim
    assert claim_direction(make_alert(invalidation=60_000.0)) == 1
    same = 63_310.0
    assert claim_direction(make_alert(invalidation=same, side=Side.SHORT)) == 1
    assert claim_direction(make_alert(invalidation=same, side=Side.LONG)) == -1
    assert claim_direction(make_alert(invalidation=same, side=None)) == 0
    assert claim_direction(make_alert(details={"direction": 1.0})) == 1


def test_down_claim_hit_with_excursions_and_price_after() -> None:
    alert = make_alert(price_at_alert=100.0, invalidation=105.0)  # claim: down
    tracker = OutcomeTracker(horizons_min=(15, 60))
    assert tracker.track(alert)
    t0 = alert.created_at
    assert tracker.on_mark("BTC", t0 - MIN, 50.0) == []  # before the alert: ignored
    assert tracker.on_mark("BTC", t0 + 1 * MIN, 101.0) == []  # 1 % against
    assert tracker.on_mark("ETH", t0 + 2 * MIN, 10.0) == []  # another asset
    assert tracker.on_mark("BTC", t0 + 5 * MIN, 97.0) == []  # 3 % in favour
    (event,) = tracker.on_mark("BTC", t0 + 16 * MIN, 90.0)  # past 15 min
    o = event.outcome
    assert (o.horizon_min, o.price_after) == (15, 97.0)  # last price within the horizon
    assert o.max_favourable_pct == pytest.approx(3.0)
    assert o.max_adverse_pct == pytest.approx(1.0)
    assert o.hit
    (event60,) = tracker.on_mark("BTC", t0 + 60 * MIN, 99.0)  # exactly at 60 min
    assert event60.outcome.horizon_min == 60
    assert event60.outcome.price_after == 99.0
    assert event60.outcome.max_favourable_pct == pytest.approx(10.0)
    assert tracker.pending == 0


def test_up_claim_miss() -> None:
    alert = make_alert(price_at_alert=100.0, invalidation=98.0, side=Side.SHORT)
    tracker = OutcomeTracker(horizons_min=(15,))
    tracker.track(alert)
    t0 = alert.created_at
    tracker.on_mark("BTC", t0 + MIN, 97.5)
    tracker.on_mark("BTC", t0 + 2 * MIN, 100.5)
    (event,) = tracker.on_mark("BTC", t0 + 20 * MIN, 99.0)
    assert not event.outcome.hit
    assert event.outcome.max_adverse_pct == pytest.approx(2.5)
    assert event.outcome.max_favourable_pct == pytest.approx(0.5)


def test_a_gap_in_marks_completes_several_horizons_at_once() -> None:
    alert = make_alert(price_at_alert=100.0, invalidation=105.0)
    tracker = OutcomeTracker(horizons_min=(60, 15))
    tracker.track(alert)
    events = tracker.on_mark("BTC", alert.created_at + 90 * MIN, 95.0)
    assert [e.outcome.horizon_min for e in events] == [15, 60]
    assert all(e.outcome.price_after == 95.0 for e in events)  # no earlier price: use this one


def test_marks_of_one_venue_per_asset_until_it_falls_silent() -> None:
    alert = make_alert(price_at_alert=100.0, invalidation=105.0)
    tracker = OutcomeTracker(horizons_min=(15,))
    tracker.track(alert)
    t0 = alert.created_at
    tracker.on_mark("BTC", t0 + MIN, 99.0, "binance")
    tracker.on_mark("BTC", t0 + 2 * MIN, 80.0, "okx")  # other venue: basis, ignored
    tracker.on_mark("BTC", t0 + 4 * MIN, 98.0, "okx")  # binance silent > 60 s: switch
    (event,) = tracker.on_mark("BTC", t0 + 16 * MIN, 98.0, "okx")
    assert event.outcome.max_favourable_pct == pytest.approx(2.0)


def test_alerts_without_direction_are_not_tracked_and_pending_is_bounded() -> None:
    tracker = OutcomeTracker(max_pending=2)
    assert not tracker.track(make_alert(invalidation=63_310.0, side=None))
    assert not tracker.track(make_alert(price_at_alert=0.0))
    for i in range(3):
        tracker.track(make_alert(alert_id=f"a{i}"))
    assert tracker.pending == 2 and tracker.dropped == 1


def test_outcome_update_round_trip_keeps_the_latest_status() -> None:
    alert = make_alert(price_at_alert=100.0, invalidation=105.0)
    tracker = OutcomeTracker(horizons_min=(15,))
    tracker.track(alert)
    tracker.note_status(make_update(alert, status=AlertStatus.SWEPT, subkind="swept"))
    (event,) = tracker.on_mark("BTC", alert.created_at + 15 * MIN, 95.0)
    update = outcome_update(event, alert.created_at + 15 * MIN)
    assert update.subkind == "outcome" and update.seq == OUTCOME_SEQ_BASE + 15
    assert update.status is AlertStatus.SWEPT
    assert outcome_from_update(update) == event.outcome
    assert outcome_from_update(make_update(alert)) is None


def test_marks_read_before_the_alert_still_complete_its_outcome() -> None:
    """A consumer catching up a backlog reads marks ahead of the alerts they complete."""
    alert = make_alert(price_at_alert=100.0, invalidation=105.0)  # claim: down
    t0 = alert.created_at
    marks = [(t0 - MIN, 50.0), (t0 + MIN, 101.0), (t0 + 5 * MIN, 97.0), (t0 + 16 * MIN, 90.0)]
    in_order = OutcomeTracker(horizons_min=(15,))
    in_order.track(alert)
    expected = [e for ts, p in marks for e in in_order.on_mark("BTC", ts, p)]

    late = OutcomeTracker(horizons_min=(15,))
    for ts, price in marks:
        assert late.on_mark("BTC", ts, price) == []
    assert late.track(alert)
    caught_up = late.catch_up(alert.alert_id)
    assert [e.outcome for e in caught_up] == [e.outcome for e in expected]
    assert caught_up[0].outcome.price_after == 97.0 and caught_up[0].outcome.hit
    assert late.pending == 0


def test_a_redelivered_alert_gets_no_second_outcome() -> None:
    alert = make_alert(price_at_alert=100.0, invalidation=105.0)
    tracker = OutcomeTracker(horizons_min=(15,))
    t0 = alert.created_at
    tracker.on_mark("BTC", t0 + MIN, 99.0)
    tracker.on_mark("BTC", t0 + 16 * MIN, 98.0)
    assert tracker.track(alert)
    assert len(tracker.catch_up(alert.alert_id)) == 1
    assert not tracker.track(alert)
    assert tracker.catch_up(alert.alert_id) == []
