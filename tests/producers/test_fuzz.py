"""Malformed frames never escape ``parse_frame``: each is a dead letter, ignored, or valid events.

10,000 examples per venue, mutated from the documented fixture frames: fields dropped, values
replaced by wrong types / NaN / negatives / huge numbers, bytes truncated or flipped, random
bytes, wrong channels. Any event that does come out must still be a valid, finite event.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liqwatch.codec import event_decoder
from liqwatch.schema import Liquidation, MarketEvent, MarkPrice, OpenInterest, Venue
from producers.base import ParseContext
from producers.parsing import parse_frame
from producers.registry import VENUES
from tests.producers.venue_fixtures import fixture_book, recording_lines, recordings, venue_of

BOOK = fixture_book()
WEIRD: list[Any] = [
    None,
    "",
    "nan",
    "NaN",
    "-1",
    -1,
    0,
    "0",
    "inf",
    "-inf",
    1e308,
    "1e999",
    2**70,
    -0.0,
    "abc",
    [],
    {},
    True,
    "SELL",
    "Buy",
    "long",
    "1760130312000",
    1760130312,
    1.5,
    "\u0000",
]
Path_ = tuple[Any, ...]


def _lines_by_venue() -> dict[Venue, list[list[dict[str, Any]]]]:
    found: dict[Venue, list[list[dict[str, Any]]]] = {}
    for path in recordings():
        found.setdefault(venue_of(path), []).append(recording_lines(Path(path)))
    return found


LINES = _lines_by_venue()
CHANNELS = {
    venue: sorted({line["channel"] for group in groups for line in group})
    for venue, groups in LINES.items()
}


def _paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _replace(node: Any, path: Path_, value: Any, drop: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy = dict(node) if isinstance(node, dict) else list(node)
    if drop and not rest:
        del copy[head]
    else:
        copy[head] = _replace(copy[head], rest, value, drop)
    return copy


@st.composite
def mutated(draw: st.DrawFn, venue: Venue) -> tuple[list[bytes], list[str], str, bytes]:
    """(valid frames fed first, their channels, channel, mutated frame bytes).

    One draw per example (a seed; every choice comes from the seeded RNG) keeps 10,000
    examples per venue within seconds.
    """
    rng = random.Random(draw(st.integers(0, 2**64)))
    kind = rng.choice(["drop", "replace", "truncate", "flip", "random", "channel"])
    lines = rng.choice(LINES[venue])
    index = rng.randrange(len(lines))
    frame, channel = lines[index]["frame"], lines[index]["channel"]
    if kind in ("drop", "replace"):
        path = rng.choice([p for p in _paths(frame) if p] or [()])
        frame = _replace(frame, path, rng.choice(WEIRD), drop=kind == "drop" and bool(path))
    raw = _encode(frame)
    if kind == "truncate":
        raw = raw[: rng.randrange(max(len(raw), 1))]
    elif kind == "flip" and raw:
        at = rng.randrange(len(raw))
        raw = raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1 :]
    elif kind == "random":
        raw = rng.randbytes(rng.randrange(200))
    elif kind == "channel":
        channel = rng.choice([*CHANNELS[venue], "", "x" * 50, "allLiquidation.", "@forceOrder"])
    before = lines[:index]
    return [_encode(ln["frame"]) for ln in before], [ln["channel"] for ln in before], channel, raw


def _encode(frame: Any) -> bytes:
    return frame.encode() if isinstance(frame, str) else msgspec.json.encode(frame)


def _valid(event: MarketEvent) -> None:
    assert event_decoder.decode(msgspec.json.encode(event)) == event
    numbers: list[float] = []
    if isinstance(event, Liquidation):
        numbers = [event.price, event.qty, event.notional_usd]
    elif isinstance(event, OpenInterest):
        numbers = [event.oi_base + 1, event.oi_usd + 1]  # zero open interest is legitimate
    elif isinstance(event, MarkPrice):
        numbers = [event.mark_price]
    assert all(math.isfinite(n) and n > 0 for n in numbers), event
    assert 1_000_000_000_000 <= event.ts_event < 10_000_000_000_000


def _check(venue: Venue, case: tuple[list[bytes], list[str], str, bytes]) -> None:
    before, channels, channel, raw = case
    ctx = ParseContext(instruments=BOOK)
    for data, valid_channel in zip(before, channels, strict=True):
        parse_frame(venue, valid_channel, data, 1760130300000, ctx)  # delta and order state
    result = parse_frame(venue, channel, raw, 1760130399000, ctx)
    outcomes = [result.dead_letter is not None, result.ignored, bool(result.events)]
    assert sum(outcomes) <= 1
    if result.dead_letter is not None:
        assert result.dead_letter.reason
        assert not result.dead_letter.reason.startswith("internal"), result.dead_letter.reason
    for event in result.events:
        _valid(event)


@pytest.mark.parametrize("venue", list(VENUES), ids=str)
def test_no_exception_escapes_parse_frame(venue: Venue) -> None:
    @settings(
        max_examples=10_000,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=mutated(venue))
    def run(case: tuple[list[bytes], list[str], str, bytes]) -> None:
        _check(venue, case)

    run()


def test_a_time_out_of_range_is_a_dead_letter_not_an_event() -> None:
    """Found by the fuzzer: an ISO time in the year 8025 made a mark price at 1.9e14 ms."""
    frame = (
        b'{"table":"instrument","action":"partial","data":[{"symbol":"XBTUSD","state":"Open",'
        b'"typ":"FFWCSX","markPrice":112300.5,"openInterest":480000000,'
        b'"timestamp":"8025-10-10T21:05:12.000Z"}]}'
    )
    ctx = ParseContext(instruments=BOOK)
    result = parse_frame(Venue.BITMEX, "instrument", frame, 1760130399000, ctx)
    assert not result.events
    assert result.dead_letter is not None
    assert "time out of range" in result.dead_letter.reason, result.dead_letter.reason
    fine = frame.replace(b"8025-", b"2025-")
    events = parse_frame(Venue.BITMEX, "instrument", fine, 1760130399000, ctx).events
    assert events and all(e.ts_event == 1760130312000 for e in events)
