"""Recordings: malformed lines become dead letters; frames come back byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liqwatch.schema import DeadLetter, RecordedFrame, Venue
from producers.envelopes import MAX_DELAY_MS
from producers.parsing import new_context
from producers.replay import (
    iter_frames,
    iter_recording,
    recording_line,
    replay_envelopes,
    replay_events,
)

FORCE_ORDER = (
    b'{"e":"forceOrder","E":1760130312345,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC",'
    b'"q":"0.740","p":"112350.10","ap":"112401.80","X":"FILLED","l":"0.740","z":"0.740",'
    b'"T":1760130312340}}'
)


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(line.rstrip(b"\n") for line in lines) + b"\n")
    return path


def test_malformed_lines_become_dead_letters_with_their_line_number(tmp_path: Path) -> None:
    good = recording_line(Venue.BINANCE, "!forceOrder@arr", 1760130312400, FORCE_ORDER)
    path = _write(
        tmp_path / "rec.jsonl",
        [
            good,
            b"{half a line",
            json.dumps({"venue": "kraken", "channel": "x", "ts_recv": 1, "frame": {}}).encode(),
            json.dumps({"venue": "okx", "channel": "x"}).encode(),
            b"\xff\xfe not utf-8",
            good,
        ],
    )
    items = list(iter_recording(path))
    assert [type(i).__name__ for i in items] == [
        "RecordedFrame",
        "DeadLetter",
        "DeadLetter",
        "DeadLetter",
        "DeadLetter",
        "RecordedFrame",
    ]
    dead = [i for i in items if isinstance(i, DeadLetter)]
    assert [d.reason.split(":")[1].strip() for d in dead] == [
        "rec.jsonl line 2",
        "rec.jsonl line 3",
        "rec.jsonl line 4",
        "rec.jsonl line 5",
    ]
    assert all(d.source == "producer/replay" and d.ts_recv == 1760130312400 for d in dead)
    first = items[0]
    assert isinstance(first, RecordedFrame) and first.frame["o"]["q"] == "0.740"

    results = list(replay_events(path, lambda venue: new_context()))
    assert [len(r.events) for _, r in results] == [1, 0, 0, 0, 0, 1]
    assert sum(r.dead_letter is not None for _, r in results) == 4


def test_replayed_envelopes_are_sealed_on_the_recordings_receive_times(tmp_path: Path) -> None:
    t = 1760130312400
    times = (t, t + MAX_DELAY_MS - 1, t + MAX_DELAY_MS, t + 3 * MAX_DELAY_MS)
    lines = [recording_line(Venue.BINANCE, "!forceOrder@arr", ts, FORCE_ORDER) for ts in times]
    envelopes = list(replay_envelopes(_write(tmp_path / "rec.jsonl", lines), "test"))
    # the third frame's receive time seals the first two before it joins a new envelope
    assert [len(e.events) for e in envelopes] == [2, 1, 1]
    assert [e.ts_flush for e in envelopes] == [t + MAX_DELAY_MS, times[3], times[3] + 1]
    assert [e.seq for e in envelopes] == [1, 2, 3]
    assert all(e.producer == "test" and e.asset == "BTC" for e in envelopes)


def test_replayed_envelopes_refuse_a_recording_that_does_not_parse(tmp_path: Path) -> None:
    good = recording_line(Venue.BINANCE, "!forceOrder@arr", 1760130312400, FORCE_ORDER)
    path = _write(tmp_path / "rec.jsonl", [good, b"{half a line"])
    with pytest.raises(ValueError, match=r"rec\.jsonl line 2"):
        list(replay_envelopes(path, "test"))


@pytest.mark.parametrize(
    "frame",
    [
        FORCE_ORDER,
        b"pong",
        b"{not json at all",
        b'"a json string"',
        b'[{"e":"markPriceUpdate","p":"1.50000000"}]',
        '{"é": "ü"}'.encode(),
    ],
)
def test_recorded_frames_replay_byte_for_byte(tmp_path: Path, frame: bytes) -> None:
    path = _write(tmp_path / "rec.jsonl", [recording_line(Venue.OKX, "c", 1760130312400, frame)])
    assert list(iter_frames(path)) == [(Venue.OKX, "c", 1760130312400, frame)]


def test_a_pretty_printed_frame_stays_on_one_line(tmp_path: Path) -> None:
    frame = b'{\n  "a": 1,\n  "b": "0.10"\n}'
    line = recording_line(Venue.OKX, "c", 1760130312400, frame)
    assert line.count(b"\n") == 1
    (item,) = iter_frames(_write(tmp_path / "rec.jsonl", [line]))
    assert not isinstance(item, DeadLetter)
    assert json.loads(item[3]) == {"a": 1, "b": "0.10"}
