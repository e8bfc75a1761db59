"""Recordings: JSON lines ``{"venue","channel","ts_recv","frame"}``, one received frame each.

``frame`` is the frame as received: a JSON object/array when the venue sent JSON, a string for
text frames (``pong``) or frames that were not valid JSON. A malformed line becomes a
``DeadLetter`` (source ``producer/replay``), never an exception. Replay hands the parser the
frame's original bytes (msgspec ``Raw``), without a decode/encode round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from liqwatch.codec import encode_line, recorded_frame_decoder
from liqwatch.schema import DeadLetter, Envelope, RecordedFrame, Venue
from producers.base import ParseContext, ParseResult
from producers.envelopes import EnvelopeBatcher
from producers.parsing import new_context, parse_frame

SOURCE = "producer/replay"


class _RawLine(msgspec.Struct):
    venue: Venue
    channel: str
    ts_recv: int
    frame: msgspec.Raw


_RAW_LINE = msgspec.json.Decoder(_RawLine)
_TEXT = msgspec.json.Decoder(str)


def _bad_line(path: Path, number: int, line: bytes, error: Exception, ts_recv: int) -> DeadLetter:
    return DeadLetter(
        source=SOURCE,
        venue="",
        channel="",
        reason=f"bad_recording: {path.name} line {number}: {error}",
        raw=line.decode("utf-8", "replace"),
        ts_recv=ts_recv,
    )


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.strip()
            if line:
                yield number, line


def iter_recording(path: Path | str) -> Iterator[RecordedFrame | DeadLetter]:
    """Every line as a ``RecordedFrame`` (frame decoded), or a ``DeadLetter`` if malformed."""
    path = Path(path)
    last_ts = 0
    for number, line in _lines(path):
        try:
            record = recorded_frame_decoder.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            yield _bad_line(path, number, line, exc, last_ts)
            continue
        last_ts = record.ts_recv
        yield record


def frame_bytes(raw: msgspec.Raw | bytes) -> bytes:
    """The frame's bytes as received: JSON verbatim, a JSON string's text unquoted."""
    data = bytes(raw)
    if data[:1] == b'"':
        return _TEXT.decode(data).encode()
    return data


def iter_frames(path: Path | str) -> Iterator[tuple[Venue, str, int, bytes] | DeadLetter]:
    """(venue, channel, ts_recv, frame bytes) per line, or a ``DeadLetter`` if malformed."""
    path = Path(path)
    last_ts = 0
    for number, line in _lines(path):
        try:
            record = _RAW_LINE.decode(line)
            frame = frame_bytes(record.frame)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            yield _bad_line(path, number, line, exc, last_ts)
            continue
        last_ts = record.ts_recv
        yield record.venue, record.channel, record.ts_recv, frame


def replay_events(
    path: Path | str, ctx_factory: Callable[[Venue], ParseContext]
) -> Iterator[tuple[int, ParseResult]]:
    """(ts_recv, parse result) per line; one context per venue from ``ctx_factory(venue)``."""
    contexts: dict[Venue, ParseContext] = {}
    for item in iter_frames(path):
        if isinstance(item, DeadLetter):
            yield item.ts_recv, ParseResult(events=[], dead_letter=item)
            continue
        venue, channel, ts_recv, frame = item
        ctx = contexts.get(venue)
        if ctx is None:
            ctx = contexts[venue] = ctx_factory(venue)
        yield ts_recv, parse_frame(venue, channel, frame, ts_recv, ctx)


def replay_envelopes(path: Path | str, producer_id: str) -> Iterator[Envelope]:
    """The recording's events in envelopes, batched as the producers batch them (their
    settings) on the recording's own receive times: the same envelopes on every run.

    For recordings that must parse whole (synthetic ones): a dead letter raises ValueError.
    """
    batcher = EnvelopeBatcher(producer_id)
    last = 0
    for ts_recv, result in replay_events(path, lambda _venue: new_context()):
        if result.dead_letter is not None:
            raise ValueError(f"{path}: {result.dead_letter.reason}")
        yield from batcher.flush_due(ts_recv)
        for event in result.events:
            full = batcher.add(event, ts_recv)
            if full is not None:
                yield full
                yield from batcher.take_ready()
        last = ts_recv
    yield from batcher.flush_all(last + 1)


def recording_line(venue: Venue, channel: str, ts_recv: int, frame: bytes) -> bytes:
    """One recording line; JSON frames are embedded verbatim, anything else as a string."""
    value: object
    try:
        decoded = msgspec.json.decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError):
        decoded = frame.decode("utf-8", "replace")
    if isinstance(decoded, str):  # text frames, and JSON string frames kept with their quotes
        value = frame.decode("utf-8", "replace")
    elif b"\n" in frame:  # verbatim would break the line
        value = decoded
    else:  # verbatim keeps the venue's exact number text
        value = msgspec.Raw(frame)
    return encode_line(RecordedFrame(venue=venue, channel=channel, ts_recv=ts_recv, frame=value))
