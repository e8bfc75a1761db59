"""Every venue's documented frames map to the hand-derived events next to them.

Side, base quantity, USD notional, timestamps, instrument, asset and completeness are checked
against ``*.expected.json`` (derived from the venue docs, with a ``why`` per event).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from liqwatch.schema import Liquidation, MarketEvent
from producers.base import ParseContext
from producers.errors import reason_class
from producers.registry import VENUES
from producers.replay import replay_events
from tests.producers.venue_fixtures import expected_for, fixture_book, recordings, venue_of

CASES = recordings()


def _replay(path: Path) -> tuple[list[MarketEvent], int, list[str]]:
    ctx = ParseContext(instruments=fixture_book())
    events: list[MarketEvent] = []
    ignored, dead = 0, []
    for _ts, result in replay_events(path, lambda _venue: ctx):
        events += result.events
        ignored += result.ignored
        if result.dead_letter is not None:
            dead.append(reason_class(result.dead_letter.reason))
    return events, ignored, dead


def _check_event(got: MarketEvent, want: dict[str, Any], where: str) -> None:
    fields = msgspec.to_builtins(got)
    assert fields["type"] == want["type"], where
    for key, value in want.items():
        if key == "why":
            continue
        if isinstance(value, float):
            assert fields[key] == pytest.approx(value, rel=1e-12), f"{where}: {key}"
        else:
            assert fields[key] == value, f"{where}: {key}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_documented_frames_map_to_expected_events(path: Path) -> None:
    venue = venue_of(path)
    assert venue in VENUES
    expected = expected_for(path)
    events, ignored, dead = _replay(path)
    assert len(events) == len(expected["events"]), [msgspec.to_builtins(e) for e in events]
    for n, (got, want) in enumerate(zip(events, expected["events"], strict=True)):
        assert got.venue is venue
        _check_event(got, want, f"{path.name} event {n} ({want['why']})")
        if isinstance(got, Liquidation):
            assert got.completeness is VENUES[venue].completeness
    assert ignored == expected["ignored"]
    assert sorted(dead) == sorted(expected["dead_letters"])


def test_every_registered_venue_has_a_liquidation_fixture() -> None:
    with_liquidations = {
        venue_of(path)
        for path in CASES
        if any(e["type"] == "liquidation" for e in expected_for(path)["events"])
    }
    assert with_liquidations == set(VENUES)


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_event_ids_are_stable_across_replays_and_unique(path: Path) -> None:
    first = [e.event_id for e in _replay(path)[0]]
    second = [e.event_id for e in _replay(path)[0]]
    assert first == second
    assert len(set(first)) == len(first)
