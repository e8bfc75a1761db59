"""Routing rules: YAML validation with line numbers, defaults, and the match conditions."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.rules import ResolvedRoute, RulesError, default_rules, load_rules, parse_rules
from liqwatch.schema import (
    AlertKind,
    Completeness,
    Intensity,
    Severity,
    Side,
    VenueCoverage,
)
from tests.alerts.factories import make_alert

EXAMPLE = """\
version: 1
defaults:
  cooldown_s: 120
  dedupe_window_s: 600
routes:
  - name: desk-btc
    match:
      kinds: [cascade, sweep]
      assets: [btc]
      min_severity: warning
      min_intensity: medium
    notify:
      urls: all
    quiet_hours: {start: "22:00", end: "07:00", timezone: Europe/Zurich}
    flood: {max_alerts: 3, window_s: 60}
  - name: ops
    notify:
      tags: [ops]
    cooldown_s: 0
    updates: false
"""


def test_example_file_parses_with_defaults_applied(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(EXAMPLE)
    rules = load_rules(path)
    desk, ops = rules.routes
    assert desk.name == "desk-btc" and desk.line == 6
    assert desk.match.kinds == [AlertKind.CASCADE, AlertKind.SWEEP]
    assert desk.match.assets == ["BTC"]
    assert desk.cooldown_s == 120 and desk.dedupe_window_s == 600
    assert desk.flood is not None and desk.flood.max_alerts == 3
    assert ops.cooldown_s == 0 and ops.updates is False and ops.notify.tags == ["ops"]
    assert rules.source == str(path)


def test_without_a_file_everything_goes_to_every_url() -> None:
    rules = load_rules(None)
    assert rules == default_rules()
    (route,) = rules.routes
    assert route.notify.urls == "all"
    assert route.match.matches(make_alert(severity=Severity.INFO, intensity=None, side=None))


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (
            "routes:\n  - name: a\n    notify: {urls: all}\n"
            "    match:\n      min_intensity: brite\n",
            5,
            "routes[0].match.min_intensity",
        ),
        (
            "routes:\n  - name: a\n    notify: {urls: all}\n    colour: red\n",
            4,
            "Extra inputs are not permitted",
        ),
        ("routes:\n  - name: a\n    match: {kinds: [cascade]}\n", 2, "routes[0].notify"),
        (
            "routes:\n  - name: a\n    notify: {urls: all}\n"
            "    quiet_hours:\n      start: '22:00'\n      end: '7am'\n",
            6,
            "expected HH:MM",
        ),
        (
            "routes:\n  - name: a\n    notify: {urls: all}\n"
            "    quiet_hours: {start: '22:00', end: '07:00', timezone: Mars/Olympus}\n",
            4,
            "unknown time zone",
        ),
        ("routes:\n  - name: a\n    notify: {}\n", 3, "at least one of"),
        (
            "routes:\n  - name: a\n    notify: {urls: all}\n  - name: a\n    notify: {urls: all}\n",
            1,
            "unique",
        ),
        (
            "routes:\n  - name: a\n    notify: {urls: all}\n"
            "    match:\n      kinds: [cascade, swoop]\n",
            5,
            "routes[0].match.kinds[1]",
        ),
        ("routes:\n  - name: a\n    notify: [urls\n", 4, "flow sequence at line 3"),
        ("routes:\n  - name: a\n   notify: {}\n", 3, "invalid YAML"),
        ("routes: []\n", 1, "at least 1 item"),
    ],
)
def test_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "rules.yaml")
    message = str(caught.value)
    assert f"rules.yaml line {line}" in message, message
    assert fragment in message, message


def test_empty_and_unreadable_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="empty"):
        parse_rules("", "rules.yaml")
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")


def _route(match_yaml: str) -> ResolvedRoute:
    text = f"routes:\n  - name: r\n    notify: {{urls: all}}\n    match: {match_yaml}\n"
    return parse_rules(text).routes[0]


def test_match_kind_asset_side_and_severity() -> None:
    route = _route("{kinds: [cascade], assets: [eth, BTC], sides: [long], min_severity: warning}")
    assert route.match.matches(make_alert())
    assert not route.match.matches(make_alert(kind=AlertKind.SWEEP))
    assert not route.match.matches(make_alert(asset="SOL"))
    assert not route.match.matches(make_alert(side=Side.SHORT))
    assert not route.match.matches(make_alert(side=None))
    assert not route.match.matches(make_alert(severity=Severity.INFO))


def test_min_intensity_applies_only_to_alerts_that_carry_one() -> None:
    route = _route("{min_intensity: bright}")
    assert route.match.matches(make_alert(intensity=Intensity.BRIGHT))
    assert not route.match.matches(make_alert(intensity=Intensity.MEDIUM))
    assert route.match.matches(make_alert(intensity=None))


def test_venue_filter_ignores_stale_venues_and_notional_floor() -> None:
    stale_okx = [
        VenueCoverage(venue="okx", completeness=Completeness.PARTIAL, stale=True, staleness_s=90.0)
    ]
    route = _route("{venues: [okx], min_notional_usd: 1000000}")
    assert not route.match.matches(make_alert(venues=stale_okx))
    live_okx = [
        VenueCoverage(venue="okx", completeness=Completeness.PARTIAL, stale=False, staleness_s=1.0)
    ]
    assert route.match.matches(make_alert(venues=live_okx))
    assert not route.match.matches(make_alert(venues=live_okx, notional_usd=10.0))


def test_subkinds_and_explicit_severities() -> None:
    route = _route("{subkinds: [started], severities: [critical]}")
    assert route.match.matches(make_alert())
    assert not route.match.matches(make_alert(subkind="escalated"))
    assert not route.match.matches(make_alert(severity=Severity.WARNING))
