"""What differs between venues on the wire, as data: URLs, subscribe messages, heartbeats.

Each venue module declares one ``VenueProtocol``; ``producers.live.connection`` is written once
and drives all of them. Nothing here imports websockets.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from liqwatch.schema import Venue
from producers.instruments import Instrument

T = TypeVar("T")


class Heartbeat(enum.StrEnum):
    SERVER_PING = "server_ping"  # the server pings, the websocket library pongs (Binance)
    JSON_PING = "json_ping"  # send {"op":"ping"} every interval (Bybit)
    TEXT_PING = "text_ping"  # send "ping" when idle for the interval, expect "pong" (OKX, BitMEX)
    JSON_RPC = "json_rpc"  # public/set_heartbeat; answer test_request with public/test (Deribit)


@dataclass(frozen=True)
class Endpoint:
    """One websocket connection: where to connect and what to send once connected."""

    name: str  # for logs and metric labels: "linear", "inverse", "public", "streams-1"
    url: str
    subscribe: tuple[str, ...]


EndpointPlanner = Callable[[Sequence[Instrument], str, bool, float], list[Endpoint]]


@dataclass(frozen=True)
class VenueProtocol:
    venue: Venue
    ws_url: str  # scheme://host[:port] of the public websocket
    heartbeat: Heartbeat
    heartbeat_interval_s: float
    stale_after_s: float  # no data frame for this long: reconnect
    lifetime_s: float | None  # the venue closes connections after this long (Binance 24 h)
    # (selected instruments, base URL, every instrument selected?, heartbeat interval) -> endpoints
    endpoints: EndpointPlanner
    channel_of: Callable[[bytes], str | None]
    ping: str | None = None  # the text sent as a heartbeat
    pong: Callable[[bytes], bool] = lambda frame: False
    rest_url: str | None = None  # REST base for open interest polls
    open_interest_path: str | None = None  # polled per symbol when the venue has no OI stream


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def json_message(payload: Any) -> str:
    return msgspec.json.encode(payload).decode()
