"""Deribit JSON-RPC: ``trades.<INSTR>.raw`` (liquidation markers) and ``ticker.<INSTR>.100ms``.

Deribit has no liquidation channel: a trade with ``liquidation`` set involved a forced order.
``T``: the taker was liquidated; a taker ``sell`` closed a long (long liquidated), ``buy`` a
short. ``M``: the maker was liquidated; the maker traded the opposite direction of the taker,
so a taker ``sell`` means a short maker was liquidated. ``MT``: both, two events. Trades without
the marker produce no events. ``amount`` is USD for inverse contracts and base coins for linear
(USDC) ones. Completeness ``complete``; ``ts_event`` is the trade ``timestamp``; ``event_id`` is
the instrument, ``trade_id`` and the liquidated role, so replays dedupe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import msgspec

from liqwatch.schema import Completeness, Liquidation, MarketEvent, Side, Venue
from producers.base import IgnoredFrame, ParseContext, VenueAdapter
from producers.errors import InvalidValueError, SchemaError, UnknownChannelError, VenueReplyError
from producers.instruments import Instrument
from producers.live.protocol import Endpoint, Heartbeat, VenueProtocol, chunks, json_message
from producers.venues._common import (
    CONTROL_CHANNEL,
    NonNegative,
    Positive,
    Rate,
    TsMs,
    decode,
    decoder,
    lookup,
)
from producers.venues._state import emit_mark, emit_open_interest

VENUE = Venue.DERIBIT
TRADES_PREFIX = "trades."
TICKER_PREFIX = "ticker."
TAKER_SIDE = {"sell": Side.LONG, "buy": Side.SHORT}  # the taker's position that was closed
MAKER_SIDE = {"sell": Side.SHORT, "buy": Side.LONG}  # the maker traded the other way
ROLES = {"T": ("T",), "M": ("M",), "MT": ("M", "T"), "TM": ("M", "T")}


class _Trade(msgspec.Struct, gc=False):
    trade_id: str | int
    timestamp: TsMs
    price: Positive
    instrument_name: str
    direction: str
    amount: Positive
    liquidation: str | None = None


class _Ticker(msgspec.Struct, gc=False):
    timestamp: TsMs
    instrument_name: str
    mark_price: Positive
    index_price: Positive | None = None
    open_interest: NonNegative | None = None
    funding_8h: Rate | None = None
    current_funding: Rate | None = None


class _Error(msgspec.Struct, gc=False):
    code: int = 0
    message: str = ""


class _TradesParams(msgspec.Struct, gc=False):
    channel: str | None = None
    data: list[_Trade] | None = None


class _TickerParams(msgspec.Struct, gc=False):
    channel: str | None = None
    data: _Ticker | None = None


class _TradesMsg(msgspec.Struct, gc=False):
    method: str | None = None
    params: _TradesParams | None = None
    id: int | str | None = None
    error: _Error | None = None


class _TickerMsg(msgspec.Struct, gc=False):
    method: str | None = None
    params: _TickerParams | None = None
    id: int | str | None = None
    error: _Error | None = None


class _Control(msgspec.Struct, gc=False):
    method: str | None = None
    id: int | str | None = None
    error: _Error | None = None


_TRADES = decoder(_TradesMsg)
_TICKERS = decoder(_TickerMsg)
_CONTROL = decoder(_Control)


def _reply(method: str | None, msg_id: int | str | None, error: _Error | None) -> NoReturn:
    if error is not None:
        raise VenueReplyError(f"{error.code} {error.message}")
    if method == "heartbeat" or msg_id is not None:
        raise IgnoredFrame(method or "reply")
    raise SchemaError("not a subscription push, heartbeat or reply")


def _check_channel(params_channel: str | None, channel: str) -> None:
    if params_channel != channel:
        raise InvalidValueError(f"params.channel {params_channel!r} on channel {channel!r}")


def _liquidation(trade: _Trade, role: str, inst: Instrument, ts_recv: int) -> Liquidation:
    sides = TAKER_SIDE if role == "T" else MAKER_SIDE
    side = sides.get(trade.direction)
    if side is None:
        raise InvalidValueError(f"unknown direction {trade.direction!r}")
    base, usd = inst.value(trade.amount, trade.price)
    return Liquidation(
        venue=VENUE,
        symbol=trade.instrument_name,
        instrument=inst.instrument,
        asset=inst.asset,
        side=side,
        price=trade.price,
        qty=base,
        notional_usd=usd,
        completeness=Completeness.COMPLETE,
        ts_event=trade.timestamp,
        ts_recv=ts_recv,
        event_id=f"deribit:{trade.instrument_name}:{trade.trade_id}:{role}",
    )


def _trade_liquidations(trade: _Trade, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    if not trade.liquidation:
        return []
    roles = ROLES.get(trade.liquidation)
    if roles is None:
        raise InvalidValueError(f"unknown liquidation marker {trade.liquidation!r}")
    inst = lookup(ctx, VENUE, trade.instrument_name)
    return [_liquidation(trade, role, inst, ts_recv) for role in roles]


def _trades(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    msg = decode(_TRADES, frame)
    if msg.method != "subscription" or msg.params is None or msg.params.data is None:
        _reply(msg.method, msg.id, msg.error)
    _check_channel(msg.params.channel, channel)
    out: list[MarketEvent] = []
    for trade in msg.params.data:
        out += _trade_liquidations(trade, ts_recv, ctx)
    return out


def _ticker(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    msg = decode(_TICKERS, frame)
    if msg.method != "subscription" or msg.params is None or msg.params.data is None:
        _reply(msg.method, msg.id, msg.error)
    _check_channel(msg.params.channel, channel)
    tick = msg.params.data
    inst = lookup(ctx, VENUE, tick.instrument_name)
    funding = tick.funding_8h if tick.funding_8h is not None else tick.current_funding
    out = emit_mark(
        ctx,
        inst,
        tick.mark_price,
        ts_event=tick.timestamp,
        ts_recv=ts_recv,
        index=tick.index_price,
        funding=funding,
    )
    if tick.open_interest is not None:
        out += emit_open_interest(ctx, inst, tick.open_interest, tick.timestamp, ts_recv)
    return out


def parse(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    if channel.startswith(TRADES_PREFIX):
        return _trades(channel, frame, ts_recv, ctx)
    if channel.startswith(TICKER_PREFIX):
        return _ticker(channel, frame, ts_recv, ctx)
    if channel == CONTROL_CHANNEL:
        msg = decode(_CONTROL, frame)
        _reply(msg.method, msg.id, msg.error)
    raise UnknownChannelError(f"deribit has no channel {channel!r}")


class _ProbeParams(msgspec.Struct, gc=False):
    channel: str | None = None


class _Probe(msgspec.Struct, gc=False):
    method: str | None = None
    params: _ProbeParams | None = None
    id: object = None


_PROBE = msgspec.json.Decoder(_Probe)


def infer_channel(frame: bytes) -> str | None:
    try:
        probe = _PROBE.decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if probe.method == "subscription" and probe.params is not None:
        return probe.params.channel
    if probe.method == "heartbeat" or probe.id is not None:
        return CONTROL_CHANNEL
    return None


ADAPTER = VenueAdapter(venue=VENUE, completeness=Completeness.COMPLETE, parse=parse)


# --- live protocol ----------------------------------------------------------------------------

# 100 ms batches carry every trade; raw intervals may need an authorized connection
TRADES_INTERVAL = "100ms"
CHANNELS_PER_MESSAGE = 100


def _endpoints(
    instruments: Sequence[Instrument], base: str, everything: bool, heartbeat_s: float
) -> list[Endpoint]:
    names = [inst.symbol for inst in instruments]
    channels = [f"trades.{n}.{TRADES_INTERVAL}" for n in names] + [
        f"ticker.{n}.100ms" for n in names
    ]
    heartbeat = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "public/set_heartbeat",
        "params": {"interval": heartbeat_s},
    }
    subscribe = [
        {"jsonrpc": "2.0", "id": n, "method": "public/subscribe", "params": {"channels": batch}}
        for n, batch in enumerate(chunks(channels, CHANNELS_PER_MESSAGE), 2)
    ]
    messages = tuple(json_message(m) for m in [heartbeat, *subscribe])
    return [Endpoint("public", f"{base}/ws/api/v2", messages)]


PROTOCOL = VenueProtocol(
    venue=VENUE,
    ws_url="wss://www.deribit.com",
    heartbeat=Heartbeat.JSON_RPC,
    heartbeat_interval_s=30.0,  # Deribit accepts >= 10 s
    stale_after_s=30.0,
    lifetime_s=None,
    endpoints=_endpoints,
    channel_of=infer_channel,
)
