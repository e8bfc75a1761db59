"""Binance USDⓈ-M futures: ``forceOrder`` liquidations, ``markPriceUpdate``, REST open interest.

Side: ``o.S`` is the side of the liquidation ORDER: SELL closes (liquidates) a long, BUY a short.
Units: ``q`` is base units for USDⓈ-M; COIN-M (``binance_coinm``) sends contracts, converted by
the instrument's contract size in USD. Completeness ``sampled``: Binance pushes at most the
latest liquidation per symbol per 1000 ms. ``ts_event`` is the order trade time ``o.T``;
``event_id`` is ``binance:<symbol>:<T>:<S>`` (one push per symbol per second makes it unique).
The same frame shapes serve COIN-M, so ``make_parser`` builds both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NoReturn

import msgspec

from liqwatch.schema import Completeness, Liquidation, MarketEvent, Side, Venue
from producers.base import IgnoredFrame, ParseContext, ParseFn, VenueAdapter
from producers.errors import (
    InvalidValueError,
    SchemaError,
    UnknownChannelError,
    UnknownInstrumentError,
    VenueReplyError,
)
from producers.instruments import USD_CONTRACTS, Instrument
from producers.live.protocol import (
    Endpoint,
    EndpointPlanner,
    Heartbeat,
    VenueProtocol,
    chunks,
    json_message,
)
from producers.venues._common import (
    CONTROL_CHANNEL,
    NonNegative,
    Positive,
    TsMs,
    decode,
    decoder,
    lookup,
    opt_float,
)
from producers.venues._state import emit_mark, emit_open_interest

FORCE_ORDER_ALL = "!forceOrder@arr"
MARK_PRICE_ALL = "!markPrice@arr@1s"
OPEN_INTEREST_PATH = "/fapi/v1/openInterest"
SIDES = {"SELL": Side.LONG, "BUY": Side.SHORT}
SAMPLED = Completeness.SAMPLED
ID_PREFIX = {Venue.BINANCE: "binance:", Venue.BINANCE_COINM: "binance_coinm:"}


class _Error(msgspec.Struct, gc=False):
    code: int | str = 0
    msg: str = ""


class _Order(msgspec.Struct, gc=False):
    s: str
    S: str
    q: Positive
    p: Positive
    T: TsMs
    ap: NonNegative = 0.0


class _ForceOrder(msgspec.Struct, gc=False):
    e: str
    o: _Order


class _ForceOrderMsg(msgspec.Struct, gc=False):
    """A bare ``forceOrder`` event, the combined-stream wrapper, or a reply to a request."""

    e: str | None = None
    o: _Order | None = None
    stream: str | None = None
    data: _ForceOrder | None = None
    id: int | str | None = None
    error: _Error | None = None
    code: int | None = None
    msg: str = ""


class _Mark(msgspec.Struct, gc=False):
    e: str
    E: TsMs
    s: str
    p: Positive
    i: str = ""
    r: str = ""  # "" for COIN-M delivery contracts
    T: int = 0  # next funding time; 0 when none


class _MarkMsg(msgspec.Struct, gc=False):
    """A bare ``markPriceUpdate`` (fields inline), the wrapper, or a reply to a request."""

    e: str | None = None
    E: TsMs | None = None
    s: str | None = None
    p: Positive | None = None
    i: str = ""
    r: str = ""
    T: int = 0
    stream: str | None = None
    data: list[_Mark] | _Mark | None = None
    id: int | str | None = None
    error: _Error | None = None
    code: int | None = None
    msg: str = ""


class _OpenInterest(msgspec.Struct, rename="camel", gc=False):
    open_interest: NonNegative | None = None
    symbol: str | None = None
    time: TsMs | None = None
    code: int | None = None
    msg: str = ""


class _Control(msgspec.Struct, gc=False):
    id: int | str | None = None
    error: _Error | None = None
    code: int | None = None
    msg: str = ""


_Reply = _ForceOrderMsg | _MarkMsg | _Control


_FORCE_ORDER = decoder(_ForceOrderMsg)
_MARKS: msgspec.json.Decoder[list[_Mark] | _MarkMsg] = msgspec.json.Decoder(
    list[_Mark] | _MarkMsg,
    strict=False,
)
_OPEN_INTEREST = decoder(_OpenInterest)
_CONTROL = decoder(_Control)


def _reply(msg: _Reply) -> NoReturn:
    """A frame without an event: a reply to our request, an error, or a malformed frame."""
    if msg.error is not None:
        raise VenueReplyError(f"{msg.error.code} {msg.error.msg}")
    if msg.code is not None:  # {"code": 0, "msg": "Unknown property", "id": 1}
        raise VenueReplyError(f"{msg.code} {msg.msg}")
    if msg.id is not None:
        raise IgnoredFrame("request reply")
    raise SchemaError("no event in frame")


def _liquidation(venue: Venue, order: _Order, ts_recv: int, ctx: ParseContext) -> Liquidation:
    # the hot path (~1 µs budget): helpers inlined, no enum property lookups, no tuples
    side = SIDES.get(order.S)
    if side is None:
        raise InvalidValueError(f"unknown order side {order.S!r}")
    symbol = order.s
    inst = ctx.instruments.by_venue[venue].get(symbol)
    if inst is None:
        raise UnknownInstrumentError(f"unknown instrument {symbol!r} on {venue}")
    price = order.p
    size = order.q * inst.contract_size
    if inst.contract_unit is USD_CONTRACTS:
        qty, usd = size / price, size
    else:
        qty, usd = size, size * price
    return Liquidation(
        venue=venue,
        symbol=symbol,
        instrument=inst.instrument,
        asset=inst.asset,
        side=side,
        price=price,
        avg_price=order.ap or None,
        qty=qty,
        notional_usd=usd,
        completeness=SAMPLED,
        ts_event=order.T,
        ts_recv=ts_recv,
        # Binance pushes at most one liquidation per symbol per 1000 ms: symbol, trade time
        # and side identify it (a re-push of the same snapshot gets the same id)
        event_id=f"{ID_PREFIX[venue]}{symbol}:{order.T}:{order.S}",
    )


def _force_orders(venue: Venue, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    try:  # inlined decode(): this is the hot path
        msg = _FORCE_ORDER.decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError):
        decode(_FORCE_ORDER, frame)  # raises the classified error
        raise
    order, kind = msg.o, msg.e
    if order is None:
        if msg.data is None:
            _reply(msg)
        order, kind = msg.data.o, msg.data.e
    if kind != "forceOrder":
        raise InvalidValueError(f"event type {kind!r} on a forceOrder stream")
    return [_liquidation(venue, order, ts_recv, ctx)]


def _mark_events(venue: Venue, mark: _Mark, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    if mark.e != "markPriceUpdate":
        raise InvalidValueError(f"event type {mark.e!r} on a markPrice stream")
    inst = lookup(ctx, venue, mark.s)
    return emit_mark(
        ctx,
        inst,
        mark.p,
        ts_event=mark.E,
        ts_recv=ts_recv,
        index=opt_float(mark.i),
        funding=opt_float(mark.r),
        next_funding=mark.T or None,
    )


def _inline_mark(msg: _MarkMsg) -> _Mark:
    if msg.e is None or msg.E is None or msg.s is None or msg.p is None:
        _reply(msg)
    return _Mark(e=msg.e, E=msg.E, s=msg.s, p=msg.p, i=msg.i, r=msg.r, T=msg.T)


def _mark_prices(venue: Venue, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    msg = decode(_MARKS, frame)
    if isinstance(msg, _MarkMsg):
        data = msg.data if msg.data is not None else _inline_mark(msg)
    else:
        data = msg
    marks = data if isinstance(data, list) else [data]
    out: list[MarketEvent] = []
    for mark in marks:
        out.extend(_mark_events(venue, mark, ts_recv, ctx))
    return out


def _open_interest(
    venue: Venue, frame: bytes, ts_recv: int, ctx: ParseContext
) -> list[MarketEvent]:
    msg = decode(_OPEN_INTEREST, frame)
    if msg.code is not None and msg.open_interest is None:
        raise VenueReplyError(f"{msg.code} {msg.msg}")
    if msg.open_interest is None or msg.symbol is None or msg.time is None:
        raise SchemaError("open interest needs open_interest, symbol and time")
    inst = lookup(ctx, venue, msg.symbol)
    return emit_open_interest(ctx, inst, msg.open_interest, msg.time, ts_recv)


def _control(frame: bytes) -> NoReturn:
    _reply(decode(_CONTROL, frame))


def make_parser(venue: Venue, open_interest_path: str) -> ParseFn:
    def parse(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
        if channel == FORCE_ORDER_ALL or channel.endswith("@forceOrder"):
            return _force_orders(venue, frame, ts_recv, ctx)
        if "markPrice" in channel:
            return _mark_prices(venue, frame, ts_recv, ctx)
        if channel == open_interest_path:
            return _open_interest(venue, frame, ts_recv, ctx)
        if channel == CONTROL_CHANNEL:
            _control(frame)
        raise UnknownChannelError(f"{venue} has no channel {channel!r}")

    return parse


class _Probe(msgspec.Struct, rename="camel", gc=False):
    stream: str | None = None
    e: str | None = None
    s: str | None = None
    open_interest: object = None
    id: object = None
    code: object = None  # an error reply, to a websocket request or a REST poll


_PROBE: msgspec.json.Decoder[list[object] | _Probe] = msgspec.json.Decoder(list[object] | _Probe)


def make_channel_inferrer(open_interest_path: str) -> Callable[[bytes], str | None]:
    """The channel a bare frame came from (for ``liqwatch parse`` and the live runner)."""

    def infer(frame: bytes) -> str | None:
        try:
            probe = _PROBE.decode(frame)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None
        if isinstance(probe, list):
            return MARK_PRICE_ALL
        if probe.stream is not None:
            return probe.stream
        if probe.e == "forceOrder":
            return FORCE_ORDER_ALL
        if probe.e == "markPriceUpdate" and probe.s:
            return f"{probe.s.lower()}@markPrice@1s"
        if probe.open_interest is not None:
            return open_interest_path
        replied = probe.id is not None or probe.code is not None
        return CONTROL_CHANNEL if replied else None

    return infer


parse = make_parser(Venue.BINANCE, OPEN_INTEREST_PATH)
infer_channel = make_channel_inferrer(OPEN_INTEREST_PATH)

ADAPTER = VenueAdapter(venue=Venue.BINANCE, completeness=Completeness.SAMPLED, parse=parse)


# --- live protocol ----------------------------------------------------------------------------

MAX_STREAMS_PER_CONNECTION = 1000  # Binance allows 1024
STREAMS_PER_MESSAGE = 200


def make_endpoints(all_market_marks: bool) -> EndpointPlanner:
    """Combined-stream connections (frames wrapped with their stream name), subscribed by
    messages; the all-market streams when every symbol is selected."""

    def plan(
        instruments: Sequence[Instrument], base: str, everything: bool, heartbeat_s: float
    ) -> list[Endpoint]:
        names = [inst.symbol.lower() for inst in instruments]
        if everything:
            marks = [MARK_PRICE_ALL] if all_market_marks else [f"{n}@markPrice@1s" for n in names]
            streams = [FORCE_ORDER_ALL, *marks]
        else:
            streams = [f"{n}@forceOrder" for n in names] + [f"{n}@markPrice@1s" for n in names]
        endpoints = []
        for number, group in enumerate(chunks(streams, MAX_STREAMS_PER_CONNECTION), 1):
            messages = tuple(
                json_message({"method": "SUBSCRIBE", "params": batch, "id": n})
                for n, batch in enumerate(chunks(group, STREAMS_PER_MESSAGE), 1)
            )
            endpoints.append(Endpoint(f"streams-{number}", f"{base}/stream", messages))
        return endpoints

    return plan


PROTOCOL = VenueProtocol(
    venue=Venue.BINANCE,
    ws_url="wss://fstream.binance.com",
    heartbeat=Heartbeat.SERVER_PING,
    heartbeat_interval_s=20.0,
    stale_after_s=30.0,
    lifetime_s=24 * 3600.0,
    endpoints=make_endpoints(all_market_marks=True),
    channel_of=infer_channel,
    rest_url="https://fapi.binance.com",
    open_interest_path=OPEN_INTEREST_PATH,
)
