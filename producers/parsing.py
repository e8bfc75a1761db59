"""The parse boundary: any frame in, events or a dead letter out, never an exception.

``parse_frame`` turns every failure (unknown venue or channel, bad JSON, wrong shape, unknown
instrument, venue error replies, and bugs) into ``ParseResult(events=[], dead_letter=...)``
whose reason reads ``"<class>: <detail>"``; acks and pongs come back ``ignored=True``.
``ParseStats`` counts frames, events and errors in plain dicts on the hot path and pushes them
to Prometheus (``ProducerMetrics``) when flushed. ``FrameParser`` bundles one context per
venue, the stats and optional dedupe for the produce loop.
"""

from __future__ import annotations

import logging

from liqwatch.schema import (
    DeadLetter,
    EventKind,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Venue,
)
from producers.base import (
    IgnoredFrame,
    ParseContext,
    ParseError,
    ParseFn,
    ParseResult,
    VenueAdapter,
)
from producers.dedupe import RecentIds
from producers.errors import reason_class, reason_of
from producers.instruments import InstrumentBook
from producers.metrics import ProducerMetrics
from producers.registry import VENUES

log = logging.getLogger(__name__)

SOURCE = "producer/parse"
_ADAPTERS: dict[str, VenueAdapter] = {venue.value: adapter for venue, adapter in VENUES.items()}
_PARSE: dict[str, ParseFn] = {venue: adapter.parse for venue, adapter in _ADAPTERS.items()}
MAX_RAW_CHARS = 256 * 1024  # a dead letter keeps at most this much of a huge frame


def new_context(instruments: InstrumentBook | None = None) -> ParseContext:
    return ParseContext(instruments=instruments or InstrumentBook.default())


def dead_letter(
    venue: str, channel: str, frame: bytes | str, ts_recv: int, reason: str
) -> DeadLetter:
    raw = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
    if len(raw) > MAX_RAW_CHARS:
        reason = f"{reason} (raw truncated from {len(raw)} chars)"
        raw = raw[:MAX_RAW_CHARS]
    return DeadLetter(
        source=SOURCE, venue=venue, channel=channel, reason=reason, raw=raw, ts_recv=ts_recv
    )


def _rejected(venue: str, channel: str, frame: bytes, ts_recv: int, reason: str) -> ParseResult:
    _log_drop(venue, reason)
    return ParseResult(events=[], dead_letter=dead_letter(venue, channel, frame, ts_recv, reason))


def parse_frame(
    venue: Venue | str, channel: str, frame: bytes, ts_recv: int, ctx: ParseContext
) -> ParseResult:
    parse = _PARSE.get(venue)
    if parse is None:
        return _rejected(str(venue), channel, frame, ts_recv, f"unknown_venue: {venue!r}")
    try:
        return ParseResult(parse(channel, frame, ts_recv, ctx))
    except IgnoredFrame:
        return ParseResult(events=[], ignored=True)
    except ParseError as exc:
        return _rejected(str(venue), channel, frame, ts_recv, reason_of(exc))
    except Exception as exc:  # a parser bug must cost one frame, not the stream
        log.exception("parser bug on %s %s", venue, channel)
        reason = f"internal: {type(exc).__name__}: {exc}"
        return _rejected(str(venue), channel, frame, ts_recv, reason)


_drops: dict[tuple[str, str], int] = {}


def _log_drop(venue: str, reason: str) -> None:
    """Logs the 1st, 2nd, 4th, 8th... drop of each (venue, reason class): visible, not a flood."""
    key = (venue, reason_class(reason))
    if key not in _drops and len(_drops) >= 1000:  # arbitrary venue names must not grow this
        _drops.clear()
    count = _drops[key] = _drops.get(key, 0) + 1
    if count & (count - 1) == 0:
        log.warning("dead letter #%d from %s: %s", count, venue, reason[:300])


def channel_family(channel: str) -> str:
    """The channel without its symbol, a bounded Prometheus label: ``allLiquidation``."""
    if channel.startswith("/"):
        return channel
    name = channel.lstrip("!")
    if "@" in name:
        parts = name.split("@")
        name = parts[0] if channel.startswith("!") else parts[1]
    return name.split(".")[0]


KINDS: dict[type, str] = {
    Liquidation: EventKind.LIQUIDATION.value,
    OpenInterest: EventKind.OPEN_INTEREST.value,
    MarkPrice: EventKind.MARK_PRICE.value,
}


class ParseStats:
    """Counters kept in dicts (cheap per frame), pushed to Prometheus by ``flush``."""

    def __init__(self) -> None:
        self.frames: dict[tuple[str, str], int] = {}  # (venue, channel)
        self.events: dict[tuple[str, str], int] = {}  # (venue, event kind)
        self.ignored: dict[tuple[str, str], int] = {}  # (venue, channel)
        self.errors: dict[tuple[str, str], int] = {}  # (venue, reason class)
        self.duplicates: dict[str, int] = {}  # venue

    def record(self, venue: str, channel: str, result: ParseResult) -> None:
        dead = result.dead_letter
        if dead is not None:
            key = (str(venue), reason_class(dead.reason))
            self.errors[key] = self.errors.get(key, 0) + 1
            if key[1] in ("unknown_channel", "unknown_venue"):
                return  # an arbitrary channel name must not become a label value
        key = (str(venue), channel)
        self.frames[key] = self.frames.get(key, 0) + 1
        for event in result.events:
            kind = (key[0], KINDS[type(event)])
            self.events[kind] = self.events.get(kind, 0) + 1
        if result.ignored:
            self.ignored[key] = self.ignored.get(key, 0) + 1

    def flush(self, metrics: ProducerMetrics) -> None:
        for (venue, channel), n in self.frames.items():
            metrics.frames.labels(venue, channel_family(channel)).inc(n)
        for (venue, kind), n in self.events.items():
            metrics.events.labels(venue, kind).inc(n)
        for (venue, channel), n in self.ignored.items():
            metrics.ignored_frames.labels(venue, channel_family(channel)).inc(n)
        for (venue, reason), n in self.errors.items():
            metrics.parse_errors.labels(venue, reason).inc(n)
        if self.errors:
            metrics.dlq_messages.labels(SOURCE).inc(sum(self.errors.values()))
        for venue, n in self.duplicates.items():
            metrics.duplicate_events.labels(venue).inc(n)
        self.frames, self.events, self.ignored, self.errors, self.duplicates = {}, {}, {}, {}, {}


class FrameParser:
    """One parse context per venue, statistics, and (optionally) dedupe by event id."""

    def __init__(
        self,
        instruments: InstrumentBook | None = None,
        stats: ParseStats | None = None,
        dedupe_capacity: int = 0,
    ) -> None:
        self.instruments = instruments or InstrumentBook.default()
        self.stats = stats or ParseStats()
        self.recent = RecentIds(dedupe_capacity) if dedupe_capacity else None
        self._contexts: dict[str, ParseContext] = {}

    def context(self, venue: Venue | str) -> ParseContext:
        ctx = self._contexts.get(venue)
        if ctx is None:
            ctx = self._contexts[venue] = ParseContext(instruments=self.instruments)
        return ctx

    def parse(self, venue: Venue | str, channel: str, frame: bytes, ts_recv: int) -> ParseResult:
        result = parse_frame(venue, channel, frame, ts_recv, self.context(venue))
        if self.recent is not None and result.events:
            fresh = self.recent.fresh(result.events)
            if len(fresh) != len(result.events):
                dropped = len(result.events) - len(fresh)
                venue_name = str(venue)
                self.stats.duplicates[venue_name] = (
                    self.stats.duplicates.get(venue_name, 0) + dropped
                )
                result = ParseResult(events=fresh)
        self.stats.record(str(venue), channel, result)
        return result
