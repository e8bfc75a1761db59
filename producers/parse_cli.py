"""``liqwatch parse --venue V [--channel C]``: venue frames on stdin, normalized events out.

Each stdin line is a bare venue frame (its channel given by ``--channel`` or read from the frame
itself: Binance ``e``/``stream``, Bybit ``topic``, OKX ``arg.channel``, Deribit
``params.channel``, BitMEX ``table``) or a recording line. Events go to stdout as JSON lines;
each unusable line gives one ``line N: <reason>`` on stderr. Exit code 1 if any line was bad.
"""

from __future__ import annotations

import io
import time
from typing import IO, Any, BinaryIO

import msgspec

from liqwatch.codec import encode_line
from liqwatch.schema import Venue
from producers.base import ParseContext
from producers.parsing import new_context, parse_frame
from producers.registry import CHANNEL_OF
from producers.replay import frame_bytes

RECORDING_KEYS = b'"ts_recv"'


class _RecordingLine(msgspec.Struct, forbid_unknown_fields=True):
    venue: str
    channel: str
    ts_recv: int
    frame: msgspec.Raw


_RECORDING = msgspec.json.Decoder(_RecordingLine)


class _Writer:
    """Writes bytes to a binary or a text stream."""

    def __init__(self, stream: IO[Any]) -> None:
        self._text = isinstance(stream, io.TextIOBase)
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data.decode() if self._text else data)


def _as_recording(line: bytes) -> _RecordingLine | None:
    if RECORDING_KEYS not in line:
        return None
    try:
        return _RECORDING.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None


def _resolve(venue: Venue, channel: str | None, line: bytes) -> tuple[str, int, bytes] | str:
    """(channel, ts_recv, frame) for a line, or the reason it cannot be parsed."""
    record = _as_recording(line)
    if record is not None:
        if record.venue != venue:
            return f"recording line of venue {record.venue!r}, expected {venue.value!r}"
        return record.channel, record.ts_recv, frame_bytes(record.frame)
    found = channel or CHANNEL_OF[venue](line)
    if found is None:
        try:
            msgspec.json.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            return f"bad_json: {exc}"
        return "cannot tell the channel from the frame; pass --channel"
    return found, int(time.time() * 1000), line


def _parse_line(
    venue: Venue, channel: str | None, line: bytes, ctx: ParseContext
) -> tuple[list[bytes], str | None]:
    resolved = _resolve(venue, channel, line)
    if isinstance(resolved, str):
        return [], resolved
    found_channel, ts_recv, frame = resolved
    result = parse_frame(venue, found_channel, frame, ts_recv, ctx)
    if result.dead_letter is not None:
        return [], result.dead_letter.reason
    return [encode_line(event) for event in result.events], None


def run_parse(
    venue: str, channel: str | None, stdin: BinaryIO, stdout: IO[Any], stderr: IO[Any]
) -> int:
    out, err = _Writer(stdout), _Writer(stderr)
    try:
        venue_enum = Venue(venue)
    except ValueError:
        known = ", ".join(v.value for v in Venue)
        err.write(f"unknown venue {venue!r} (known: {known})\n".encode())
        return 2
    ctx = new_context()
    bad = 0
    for number, raw in enumerate(stdin, 1):
        line = raw.strip()
        if not line:
            continue
        lines, reason = _parse_line(venue_enum, channel, line, ctx)
        for encoded in lines:
            out.write(encoded)
        if reason is not None:
            bad += 1
            err.write(f"line {number}: {reason}\n".encode())
    return 1 if bad else 0
