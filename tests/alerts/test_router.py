"""Router decisions: cooldown, dedupe window, flood digest, quiet hours, follow-ups."""

from __future__ import annotations

import datetime as dt
from typing import Any

from alerts.router import COOLDOWN, DUPLICATE, FOLDED, QUIET, Router
from alerts.rules import ResolvedRoute, parse_rules
from liqwatch.schema import Alert, AlertKind, Severity, Side
from tests.alerts.factories import MIN, make_alert, make_update


def _router(settings: str) -> tuple[Router, ResolvedRoute]:
    text = f"routes:\n  - name: r\n    notify: {{urls: all}}\n{settings}"
    rules = parse_rules(text)
    return Router(rules), rules.routes[0]


def _at(minute: int, **changes: Any) -> Alert:
    base = make_alert().created_at
    changes.setdefault(
        "alert_id", f"a{minute}-{changes.get('subkind', '')}-{changes.get('asset', '')}"
    )
    return make_alert(created_at=base + minute * MIN, **changes)


def test_cooldown_suppresses_same_kind_asset_side_until_it_expires() -> None:
    router, route = _router("    cooldown_s: 300\n    dedupe_window_s: 0\n")
    assert router.decide(_at(0, severity=Severity.WARNING), route).send
    second = router.decide(_at(2, subkind="other", severity=Severity.WARNING), route)
    assert (second.send, second.reason) == (False, COOLDOWN)
    assert router.decide(_at(2, asset="ETH", severity=Severity.WARNING), route).send
    assert router.decide(_at(2, side=Side.SHORT, severity=Severity.WARNING), route).send
    assert router.decide(_at(6, subkind="later", severity=Severity.WARNING), route).send


def test_cooldown_lets_a_more_severe_alert_through() -> None:
    router, route = _router("    cooldown_s: 300\n    dedupe_window_s: 0\n")
    assert router.decide(_at(0, severity=Severity.WARNING), route).send
    assert router.decide(_at(1, subkind="x", severity=Severity.CRITICAL), route).send
    assert not router.decide(_at(2, subkind="y", severity=Severity.CRITICAL), route).send


def test_dedupe_window_drops_the_same_claim_with_a_new_id() -> None:
    router, route = _router("    dedupe_window_s: 600\n")
    first = _at(0)
    assert router.decide(first, route).send
    again = router.decide(_at(3, subkind=first.subkind), route)
    assert (again.send, again.reason) == (False, DUPLICATE)
    moved_band = _at(4, subkind=first.subkind, band_lo=61_000.0, band_hi=61_300.0)
    assert router.decide(moved_band, route).send
    assert router.decide(_at(11, subkind=first.subkind), route).send


def test_flood_limit_folds_the_excess_into_one_digest() -> None:
    router, route = _router("    dedupe_window_s: 0\n    flood: {max_alerts: 2, window_s: 60}\n")
    start = make_alert().created_at
    alerts = [
        make_alert(alert_id=f"f{i}", created_at=start + i * 5_000, asset=f"A{i}") for i in range(5)
    ]
    decisions = [router.decide(a, route) for a in alerts]
    assert [d.send for d in decisions] == [True, True, False, False, False]
    assert {d.reason for d in decisions[2:]} == {FOLDED}
    assert router.due_digests(start + 59_000) == []
    (digest,) = router.due_digests(start + 60_000)
    assert [a.alert_id for a in digest.alerts] == ["f2", "f3", "f4"]
    assert digest.total == 3 and digest.digest_id == f"digest:r:{start}"
    assert router.due_digests(start + 120_000) == []
    later = make_alert(alert_id="g", created_at=start + 61_000, asset="B")
    assert router.decide(later, route).send  # a new window


def test_flood_digest_is_released_when_the_next_window_opens() -> None:
    router, route = _router("    dedupe_window_s: 0\n    flood: {max_alerts: 1, window_s: 10}\n")
    t0 = make_alert().created_at
    router.decide(make_alert(alert_id="x0", created_at=t0, asset="A"), route)
    router.decide(make_alert(alert_id="x1", created_at=t0 + 1_000, asset="B"), route)
    assert router.decide(make_alert(alert_id="x2", created_at=t0 + 20_000, asset="C"), route).send
    (digest,) = router.due_digests(t0 + 20_000)
    assert [a.alert_id for a in digest.alerts] == ["x1"]


def _ms(utc_text: str) -> int:
    moment = dt.datetime.fromisoformat(utc_text).replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def test_quiet_hours_wrap_midnight_in_the_route_time_zone() -> None:
    router, route = _router(
        "    dedupe_window_s: 0\n"
        "    quiet_hours: {start: '22:00', end: '07:00', timezone: America/New_York}\n"
    )
    # 03:30 UTC = 23:30 New York (EDT): quiet; 12:00 UTC = 08:00 New York: not quiet
    night = make_alert(created_at=_ms("2026-07-01T03:30:00"), severity=Severity.WARNING)
    day = make_alert(
        created_at=_ms("2026-07-01T12:00:00"), severity=Severity.WARNING, alert_id="day"
    )
    decision = router.decide(night, route)
    assert (decision.send, decision.reason) == (False, QUIET)
    assert router.decide(day, route).send


def test_quiet_hours_let_critical_alerts_through_unless_configured() -> None:
    night = make_alert(created_at=_ms("2026-07-01T23:30:00"), severity=Severity.CRITICAL)
    router, route = _router("    quiet_hours: {start: '22:00', end: '07:00'}\n")
    assert router.decide(night, route).send
    router, route = _router(
        "    quiet_hours: {start: '22:00', end: '07:00', except_severity: null}\n"
    )
    assert not router.decide(night, route).send


def test_updates_and_outcomes_follow_the_route_settings() -> None:
    alert = make_alert()
    update = make_update(alert)
    outcome = make_update(alert, seq=1015, subkind="outcome")
    router, route = _router("")
    decision = router.decide_update(update, route, Severity.CRITICAL)
    assert decision is not None and decision.send
    assert router.decide_update(outcome, route, Severity.CRITICAL) is None
    router, route = _router("    updates: false\n    outcomes: true\n")
    assert router.decide_update(update, route, Severity.CRITICAL) is None
    outcome_decision = router.decide_update(outcome, route, Severity.CRITICAL)
    assert outcome_decision is not None and outcome_decision.send


def test_match_returns_only_routes_whose_conditions_hold() -> None:
    rules = parse_rules(
        "routes:\n"
        "  - name: cascades\n    notify: {urls: all}\n    match: {kinds: [cascade]}\n"
        "  - name: sweeps\n    notify: {urls: all}\n    match: {kinds: [sweep]}\n"
    )
    router = Router(rules)
    assert [r.name for r in router.match(make_alert())] == ["cascades"]
    assert [r.name for r in router.match(make_alert(kind=AlertKind.SWEEP))] == ["sweeps"]
    assert router.match(make_alert(kind=AlertKind.PRESSURE)) == []


def test_the_same_alert_id_always_gets_the_same_decision() -> None:
    router, route = _router("    cooldown_s: 300\n    dedupe_window_s: 600\n")
    alert = _at(0)
    assert router.decide(alert, route).send
    assert router.decide(alert, route).send  # a replay retrying a failed target
    later = router.decide(_at(1, subkind=alert.subkind), route)
    assert not later.send
    assert router.decide(_at(1, subkind=alert.subkind), route) == later
