"""``liqwatch parse``: frames on stdin, events on stdout, one stderr line per bad line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import msgspec
import pytest

from liqwatch.codec import event_decoder
from liqwatch.schema import Liquidation
from producers.parse_cli import run_parse
from tests.producers.venue_fixtures import recording_lines, recordings, venue_of

GOOD = (
    b'{"e":"forceOrder","E":1760130312345,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC",'
    b'"q":"0.740","p":"112350.10","ap":"112401.80","X":"FILLED","l":"0.740","z":"0.740",'
    b'"T":1760130312340}}'
)
GOOD_2 = GOOD.replace(b'"S":"SELL"', b'"S":"BUY"')


def _run(
    venue: str, lines: list[bytes], channel: str | None = None
) -> tuple[int, list[bytes], list[str]]:
    stdout, stderr = io.BytesIO(), io.StringIO()
    code = run_parse(venue, channel, io.BytesIO(b"\n".join(lines) + b"\n"), stdout, stderr)
    return code, stdout.getvalue().splitlines(), stderr.getvalue().splitlines()


def test_garbage_gives_one_stderr_line_each_and_the_good_frames_still_come_out() -> None:
    recording = json.dumps(
        {
            "venue": "binance",
            "channel": "nope@stream",
            "ts_recv": 1760130312400,
            "frame": {"e": "x"},
        }
    ).encode()
    missing = b'{"e":"forceOrder","E":1760130312345,"o":{"s":"BTCUSDT","S":"SELL"}}'
    lines = [GOOD, b"{not json", recording, missing, b"", b'{"result":null,"id":1}', GOOD_2]
    code, out, err = _run("binance", lines)
    assert code == 1
    events = [event_decoder.decode(line) for line in out]
    assert [e.side.value for e in events if isinstance(e, Liquidation)] == ["long", "short"]
    assert len(err) == 3
    assert err[0].startswith("line 2: bad_json")
    assert err[1].startswith("line 3: unknown_channel")
    assert err[2].startswith("line 4: schema")


def test_clean_input_exits_zero_and_writes_to_text_streams() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run_parse("binance", "!forceOrder@arr", io.BytesIO(GOOD + b"\n"), stdout, stderr)
    assert code == 0
    assert stderr.getvalue() == ""
    event = msgspec.json.decode(stdout.getvalue())
    assert event["instrument"] == "BTC-USDT-PERP" and event["qty"] == pytest.approx(0.74)


def test_unknown_venue_is_a_clear_error() -> None:
    code, out, _ = _run("kraken", [GOOD])
    assert code == 2 and out == []


def test_a_frame_whose_channel_cannot_be_told_asks_for_channel() -> None:
    code, _, err = _run("bybit", [b'{"data":[]}'])
    assert code == 1
    assert err == ["line 1: cannot tell the channel from the frame; pass --channel"]


@pytest.mark.parametrize("path", recordings(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_bare_frames_are_routed_by_the_channel_they_carry(path: Path) -> None:
    """Every fixture frame without its recording wrapper gives the same events."""
    lines = recording_lines(path)
    as_recording = [json.dumps(line).encode() for line in lines]
    bare = [
        line["frame"].encode()
        if isinstance(line["frame"], str)
        else json.dumps(line["frame"]).encode()
        for line in lines
    ]
    venue = venue_of(path).value
    code_a, out_a, err_a = _run(venue, as_recording)
    code_b, out_b, err_b = _run(venue, bare)
    ids_a = [msgspec.json.decode(line)["event_id"] for line in out_a]
    ids_b = [msgspec.json.decode(line)["event_id"] for line in out_b]
    assert ids_a == ids_b
    assert [e.split(":", 1)[1] for e in err_a] == [e.split(":", 1)[1] for e in err_b]
    assert code_a == code_b
