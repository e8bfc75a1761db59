"""The contract between venue adapters and everything that drives them.

A venue adapter turns one raw frame (bytes, as received) into normalized events. It is a pure
function of the frame, the receive time and a small per-connection context (instrument metadata,
and state for venues that send deltas: Bybit tickers, BitMEX liquidation updates). It raises
``ParseError`` with a reason for anything it cannot use; ``parse_frame`` below is the boundary
that never raises and turns errors into dead letters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from liqwatch.schema import Completeness, DeadLetter, MarketEvent, Venue


class ParseError(Exception):
    """A frame we cannot turn into events; the message is the dead-letter reason."""


class IgnoredFrame(Exception):  # noqa: N818 - not an error: acks, pongs, subscription replies
    """A well-formed frame that carries no events (subscribe ack, pong, heartbeat)."""


@dataclass
class ParseContext:
    """Per-connection context: instrument metadata and the state delta channels need."""

    instruments: Any  # producers.instruments.InstrumentBook
    state: dict[str, Any] = field(default_factory=dict)


ParseFn = Callable[[str, bytes, int, ParseContext], list[MarketEvent]]


class ParseResult(msgspec.Struct, frozen=True, gc=False):
    """One per frame on the hot path: a msgspec struct builds in ~0.1 µs, a frozen dataclass
    in ~0.6 µs (a third of the per-frame budget). Holds no cycles, so it skips GC tracking."""

    events: list[MarketEvent]
    dead_letter: DeadLetter | None = None
    ignored: bool = False


@dataclass(frozen=True)
class VenueAdapter:
    venue: Venue
    completeness: Completeness
    parse: ParseFn
