"""Bybit v5 (linear and inverse): ``allLiquidation.<SYM>`` and ``tickers.<SYM>``.

Side: ``S`` is the POSITION side (opposite to Binance): ``Buy`` = a long was liquidated.
Units: ``v`` is base units for linear contracts and USD for inverse ones (the instrument's
contract unit says which). ``p`` is the bankruptcy price. Completeness ``complete`` (every
liquidation, pushed every 500 ms). ``ts_event`` is the liquidation time ``T``.
Tickers come as a snapshot then deltas that omit unchanged fields; the merged view per symbol
lives in ``ctx.state`` and mark price / open interest are emitted from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import msgspec

from liqwatch.schema import Completeness, ContractKind, Liquidation, MarketEvent, Side, Venue
from producers.base import IgnoredFrame, ParseContext, VenueAdapter
from producers.errors import (
    InvalidValueError,
    SchemaError,
    StateError,
    UnknownChannelError,
    UnknownInstrumentError,
    VenueReplyError,
)
from producers.instruments import USD_CONTRACTS, Instrument
from producers.live.protocol import (
    Endpoint,
    Heartbeat,
    VenueProtocol,
    chunks,
    json_message,
)
from producers.venues._common import (
    CONTROL_CHANNEL,
    MAX_PHYSICAL,
    NumberText,
    TsMs,
    decode,
    decoder,
    lookup,
    number_text,
    opt_float,
)
from producers.venues._state import emit_mark, emit_open_interest

VENUE = Venue.BYBIT
LIQUIDATION_PREFIX = "allLiquidation."
TICKERS_PREFIX = "tickers."
TICKERS_STATE_KEY = "bybit_tickers"
SIDES = {"Buy": Side.LONG, "Sell": Side.SHORT}
COMPLETE = Completeness.COMPLETE


class _Liq(msgspec.Struct, gc=False):
    T: TsMs
    s: str
    S: str
    v: NumberText  # text as sent: it goes into the event id verbatim
    p: NumberText


class _LiqMsg(msgspec.Struct, gc=False):
    topic: str | None = None
    data: list[_Liq] | None = None
    op: str | None = None
    success: bool | None = None
    ret_msg: str = ""


class _Ticker(msgspec.Struct, rename="camel", gc=False):
    # strings: Bybit sends "" for fields that do not apply (funding of dated futures)
    symbol: str
    mark_price: str | None = None
    index_price: str | None = None
    open_interest: str | None = None
    funding_rate: str | None = None
    next_funding_time: str | None = None


class _TickerMsg(msgspec.Struct, gc=False):
    topic: str | None = None
    type: str | None = None
    ts: TsMs | None = None
    data: _Ticker | None = None
    op: str | None = None
    success: bool | None = None
    ret_msg: str = ""


class _Control(msgspec.Struct, gc=False):
    op: str | None = None
    success: bool | None = None
    ret_msg: str = ""


class TickerView:
    """The merged ticker of one symbol (snapshot plus every delta since)."""

    __slots__ = ("funding", "index", "mark", "next_funding", "open_interest")

    def __init__(self) -> None:
        self.mark: float | None = None
        self.index: float | None = None
        self.open_interest: float | None = None
        self.funding: float | None = None
        self.next_funding: int | None = None


_LIQUIDATIONS = decoder(_LiqMsg)
_TICKERS = decoder(_TickerMsg)
_CONTROL = decoder(_Control)


def _reply(op: str | None, success: bool | None, ret_msg: str) -> NoReturn:
    if op is None:
        raise SchemaError("no topic and no op: not a Bybit frame")
    if success is False:
        raise VenueReplyError(f"{op}: {ret_msg}")
    raise IgnoredFrame(op)


def _price_and_size(liq: _Liq) -> tuple[float, float]:
    """float() of p and v with their errors: what the fast path could not settle."""
    try:
        price, contracts = float(liq.p), float(liq.v)
    except ValueError:
        raise SchemaError(f"not a number: v={liq.v!r} p={liq.p!r}") from None
    if not (0.0 < price <= MAX_PHYSICAL and 0.0 < contracts <= MAX_PHYSICAL):
        raise SchemaError(f"v and p must be finite numbers > 0, got v={liq.v!r} p={liq.p!r}")
    return price, contracts


def _liquidation(liq: _Liq, ts_recv: int, ctx: ParseContext) -> Liquidation:
    side = SIDES.get(liq.S)
    if side is None:
        raise InvalidValueError(f"unknown position side {liq.S!r}")
    symbol = liq.s
    inst = ctx.instruments.by_venue[VENUE].get(symbol)  # lookup() inlined: the hot path
    if inst is None:
        raise UnknownInstrumentError(f"unknown instrument {symbol!r} on bybit")
    try:  # positive() inlined: the hot path
        price, contracts = number_text(liq.p), number_text(liq.v)  # type: ignore[arg-type]
    except (msgspec.DecodeError, TypeError):
        price = contracts = 0.0  # not JSON number text: float() below decides
    if not (0.0 < price <= MAX_PHYSICAL and 0.0 < contracts <= MAX_PHYSICAL):
        price, contracts = _price_and_size(liq)
    size = contracts * inst.contract_size
    if inst.contract_unit is USD_CONTRACTS:
        qty, usd = size / price, size
    else:
        qty, usd = size, size * price
    return Liquidation(
        venue=VENUE,
        symbol=symbol,
        instrument=inst.instrument,
        asset=inst.asset,
        side=side,
        price=price,
        qty=qty,
        notional_usd=usd,
        completeness=COMPLETE,
        ts_event=liq.T,
        ts_recv=ts_recv,
        event_id=f"bybit:{symbol}:{liq.T}:{liq.S}:{liq.v}@{liq.p}",
    )


def _positive(name: str, text: str | None) -> float | None:
    value = opt_float(text or "")
    if value is not None and value <= 0:
        raise SchemaError(f"{name} must be > 0, got {text!r}")
    return value


def _merge(view: TickerView, data: _Ticker) -> tuple[bool, bool]:
    """Applies the fields present; returns (price fields changed, open interest changed)."""
    mark = _positive("markPrice", data.mark_price)
    index = _positive("indexPrice", data.index_price)
    funding = opt_float(data.funding_rate or "")
    next_funding = opt_float(data.next_funding_time or "")
    oi = opt_float(data.open_interest or "")
    if oi is not None and oi < 0:
        raise SchemaError(f"openInterest must be >= 0, got {data.open_interest!r}")
    if mark is not None:
        view.mark = mark
    if index is not None:
        view.index = index
    if funding is not None:
        view.funding = funding
    if next_funding:
        view.next_funding = int(next_funding)
    if oi is not None:
        view.open_interest = oi
    return (mark, index, funding) != (None, None, None), oi is not None


def _ticker_view(msg: _TickerMsg, data: _Ticker, ctx: ParseContext) -> TickerView:
    """The view a frame applies to: a fresh one for a snapshot, the stored one for a delta."""
    if msg.type == "snapshot":
        return TickerView()
    if msg.type != "delta":
        raise InvalidValueError(f"unknown tickers type {msg.type!r}")
    found: TickerView | None = ctx.state.get(TICKERS_STATE_KEY, {}).get(data.symbol)
    if found is None:
        raise StateError(f"tickers delta for {data.symbol} before its snapshot")
    return found


def _tickers(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    msg = decode(_TICKERS, frame)
    if msg.topic is None or msg.data is None or msg.ts is None:
        _reply(msg.op, msg.success, msg.ret_msg)
    if msg.topic != channel:
        raise InvalidValueError(f"topic {msg.topic!r} on channel {channel!r}")
    inst = lookup(ctx, VENUE, msg.data.symbol)
    view = _ticker_view(msg, msg.data, ctx)
    price_changed, oi_changed = _merge(view, msg.data)  # all-or-nothing: converts, then assigns
    ctx.state.setdefault(TICKERS_STATE_KEY, {})[msg.data.symbol] = view
    out: list[MarketEvent] = []
    if price_changed and view.mark is not None:
        out += emit_mark(
            ctx,
            inst,
            view.mark,
            ts_event=msg.ts,
            ts_recv=ts_recv,
            index=view.index,
            funding=view.funding,
            next_funding=view.next_funding,
        )
    if oi_changed and view.open_interest is not None:
        out += emit_open_interest(ctx, inst, view.open_interest, msg.ts, ts_recv)
    return out


def _not_liquidations(msg: _LiqMsg, channel: str) -> NoReturn:
    if msg.topic is None or msg.data is None:
        _reply(msg.op, msg.success, msg.ret_msg)
    raise InvalidValueError(f"topic {msg.topic!r} on channel {channel!r}")


def parse(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    """Liquidations inline (one call less on the hot path), other channels by ``_parse_other``."""
    if not channel.startswith(LIQUIDATION_PREFIX):
        return _parse_other(channel, frame, ts_recv, ctx)
    try:  # inlined decode(): this is the hot path
        msg = _LIQUIDATIONS.decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError):
        decode(_LIQUIDATIONS, frame)  # raises the classified error
        raise
    data = msg.data
    if msg.topic != channel or data is None:
        _not_liquidations(msg, channel)
    if len(data) == 1:  # the common case, without a comprehension's frame
        return [_liquidation(data[0], ts_recv, ctx)]
    return [_liquidation(liq, ts_recv, ctx) for liq in data]


def _parse_other(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    if channel.startswith(TICKERS_PREFIX):
        return _tickers(channel, frame, ts_recv, ctx)
    if channel == CONTROL_CHANNEL:
        msg = decode(_CONTROL, frame)
        _reply(msg.op, msg.success, msg.ret_msg)
    raise UnknownChannelError(f"bybit has no channel {channel!r}")


class _Probe(msgspec.Struct, gc=False):
    topic: str | None = None
    op: str | None = None


_PROBE = msgspec.json.Decoder(_Probe)


def infer_channel(frame: bytes) -> str | None:
    try:
        probe = _PROBE.decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if probe.topic is not None:
        return probe.topic
    return CONTROL_CHANNEL if probe.op is not None else None


ADAPTER = VenueAdapter(venue=VENUE, completeness=Completeness.COMPLETE, parse=parse)


# --- live protocol ----------------------------------------------------------------------------

ARGS_PER_MESSAGE = 10
PING = json_message({"op": "ping"})


def _endpoints(
    instruments: Sequence[Instrument], base: str, everything: bool, heartbeat_s: float
) -> list[Endpoint]:
    """One connection per category: linear and inverse contracts live on different URLs."""
    endpoints = []
    for kind, path in ((ContractKind.LINEAR, "linear"), (ContractKind.INVERSE, "inverse")):
        symbols = [inst.symbol for inst in instruments if inst.kind is kind]
        topics = [f"{LIQUIDATION_PREFIX}{s}" for s in symbols] + [
            f"{TICKERS_PREFIX}{s}" for s in symbols
        ]
        if not topics:
            continue
        messages = tuple(
            json_message({"op": "subscribe", "req_id": str(n), "args": batch})
            for n, batch in enumerate(chunks(topics, ARGS_PER_MESSAGE), 1)
        )
        endpoints.append(Endpoint(path, f"{base}/v5/public/{path}", messages))
    return endpoints


def is_pong(frame: bytes) -> bool:
    if b"pong" not in frame:
        return False
    try:
        reply = _CONTROL.decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False
    return reply.op == "pong" or reply.ret_msg == "pong"


PROTOCOL = VenueProtocol(
    venue=VENUE,
    ws_url="wss://stream.bybit.com",
    heartbeat=Heartbeat.JSON_PING,
    heartbeat_interval_s=20.0,
    stale_after_s=30.0,
    lifetime_s=None,
    endpoints=_endpoints,
    channel_of=infer_channel,
    ping=PING,
    pong=is_pong,
)
