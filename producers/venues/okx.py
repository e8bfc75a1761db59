"""OKX v5 public: ``liquidation-orders`` (SWAP and FUTURES), ``open-interest``, ``mark-price``,
``funding-rate``.

Side: ``side`` is the liquidation ORDER side (sell closes a long); ``posSide`` is ``long`` /
``short`` in hedge mode (it must agree with ``side``) or ``net``. Units: ``sz`` counts
contracts of ``ctVal`` (base coins for linear, USD for inverse). ``ts`` is a string of ms.
Completeness ``partial``: OKX does not push every liquidation and may push them out of order.
Funding rates are kept per instrument and attached to the mark price events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, NoReturn, TypeVar

import msgspec

from liqwatch.schema import Completeness, Liquidation, MarketEvent, MarkPrice, Side, Venue
from producers.base import IgnoredFrame, ParseContext, VenueAdapter
from producers.errors import InvalidValueError, SchemaError, UnknownChannelError, VenueReplyError
from producers.instruments import Instrument
from producers.live.protocol import Endpoint, Heartbeat, VenueProtocol, chunks, json_message
from producers.venues._common import (
    CONTROL_CHANNEL,
    NonNegative,
    NumberText,
    Positive,
    TsMs,
    decode,
    decoder,
    ignore_pong,
    lookup,
    opt_float,
    positive,
)
from producers.venues._state import (
    emit_mark,
    emit_open_interest,
    emit_valued_open_interest,
    mark_event,
    market_state,
)

VENUE = Venue.OKX
PARTIAL = Completeness.PARTIAL
FUNDING_STATE_KEY = "okx_funding"
# (order side, posSide) -> the position liquidated; anything else contradicts itself
SIDES = {
    ("sell", "long"): Side.LONG,
    ("buy", "short"): Side.SHORT,
    ("sell", "net"): Side.LONG,
    ("buy", "net"): Side.SHORT,
    ("sell", ""): Side.LONG,
    ("buy", ""): Side.SHORT,
}

D = TypeVar("D")


class _Arg(msgspec.Struct, gc=False):
    channel: str


class _Msg(msgspec.Struct, Generic[D], gc=False):
    """A push (``arg`` + ``data``) or an event reply (``subscribe``, ``error``, ``notice``)."""

    arg: _Arg | None = None
    data: list[D] | None = None
    event: str | None = None
    code: str = ""
    msg: str = ""


class _Detail(msgspec.Struct, rename="camel", gc=False):
    bk_px: NumberText  # text as sent: it goes into the event id verbatim
    sz: NumberText
    side: str
    ts: TsMs
    pos_side: str = ""


class _LiqEntry(msgspec.Struct, rename="camel", gc=False):
    inst_id: str
    details: list[_Detail]


class _OpenInterest(msgspec.Struct, rename="camel", gc=False):
    inst_id: str
    oi: NonNegative
    ts: TsMs
    oi_ccy: NonNegative | None = None
    oi_usd: NonNegative | None = None


class _Mark(msgspec.Struct, rename="camel", gc=False):
    inst_id: str
    mark_px: Positive
    ts: TsMs


class _Funding(msgspec.Struct, rename="camel", gc=False):
    inst_id: str
    funding_rate: str
    funding_time: str = ""
    ts: TsMs | None = None


_LIQUIDATIONS = decoder(_Msg[_LiqEntry])
_OPEN_INTEREST = decoder(_Msg[_OpenInterest])
_MARKS = decoder(_Msg[_Mark])
_FUNDING = decoder(_Msg[_Funding])
_CONTROL = decoder(_Msg[object])


def _data(msg: _Msg[D], channel: str) -> list[D]:
    if msg.arg is None or msg.data is None:
        _reply(msg)
    if msg.arg.channel != channel:
        raise InvalidValueError(f"arg.channel {msg.arg.channel!r} on channel {channel!r}")
    return msg.data


def _reply(msg: _Msg[D]) -> NoReturn:
    if msg.event == "error":
        raise VenueReplyError(f"{msg.code} {msg.msg}")
    if msg.event is not None:
        raise IgnoredFrame(msg.event)
    raise SchemaError("no data and no event: not an OKX push")


def _liquidation(inst_id: str, detail: _Detail, ts_recv: int, ctx: ParseContext) -> Liquidation:
    side = SIDES.get((detail.side, detail.pos_side))
    if side is None:
        raise InvalidValueError(f"side {detail.side!r} with posSide {detail.pos_side!r}")
    inst = lookup(ctx, VENUE, inst_id)
    price = positive("bkPx", detail.bk_px)
    base, usd = inst.value(positive("sz", detail.sz), price)
    return Liquidation(
        venue=VENUE,
        symbol=inst_id,
        instrument=inst.instrument,
        asset=inst.asset,
        side=side,
        price=price,
        qty=base,
        notional_usd=usd,
        completeness=PARTIAL,
        ts_event=detail.ts,
        ts_recv=ts_recv,
        event_id=f"okx:{inst_id}:{detail.ts}:{detail.side}:{detail.pos_side}:{detail.sz}@{detail.bk_px}",
    )


def _liquidations(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    entries = _data(decode(_LIQUIDATIONS, frame), channel)
    return [
        _liquidation(entry.inst_id, detail, ts_recv, ctx)
        for entry in entries
        for detail in entry.details
    ]


def _open_interest(
    channel: str, frame: bytes, ts_recv: int, ctx: ParseContext
) -> list[MarketEvent]:
    out: list[MarketEvent] = []
    for row in _data(decode(_OPEN_INTEREST, frame), channel):
        inst = lookup(ctx, VENUE, row.inst_id)
        if row.oi_ccy is not None and row.oi_usd is not None:
            out += emit_valued_open_interest(
                ctx, inst, row.oi_ccy, row.oi_usd, ts_event=row.ts, ts_recv=ts_recv
            )
        else:  # contracts, valued at the mark price
            out += emit_open_interest(ctx, inst, row.oi, row.ts, ts_recv)
    return out


def _funding_of(ctx: ParseContext, inst_id: str) -> tuple[float | None, int | None]:
    funding: dict[str, tuple[float | None, int | None]] = ctx.state.get(FUNDING_STATE_KEY, {})
    return funding.get(inst_id, (None, None))


def _marks(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    out: list[MarketEvent] = []
    for row in _data(decode(_MARKS, frame), channel):
        inst = lookup(ctx, VENUE, row.inst_id)
        rate, next_time = _funding_of(ctx, row.inst_id)
        out += emit_mark(
            ctx,
            inst,
            row.mark_px,
            ts_event=row.ts,
            ts_recv=ts_recv,
            funding=rate,
            next_funding=next_time,
        )
    return out


def _funding_row(row: _Funding, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    inst = lookup(ctx, VENUE, row.inst_id)
    rate = opt_float(row.funding_rate)
    next_time = opt_float(row.funding_time)
    next_funding = int(next_time) if next_time else None
    ctx.state.setdefault(FUNDING_STATE_KEY, {})[row.inst_id] = (rate, next_funding)
    mark = market_state(ctx).marks.get(row.inst_id)
    if mark is None:  # kept; the next mark price carries it
        return []
    ts = row.ts or ts_recv
    event: MarkPrice = mark_event(
        inst,
        mark,
        ts_event=ts,
        ts_recv=ts_recv,
        event_id=f"okx:{row.inst_id}:funding:{ts}",
        funding=rate,
        next_funding=next_funding,
    )
    return [event]


def _funding(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    out: list[MarketEvent] = []
    for row in _data(decode(_FUNDING, frame), channel):
        out += _funding_row(row, ts_recv, ctx)
    return out


HANDLERS = {
    "liquidation-orders": _liquidations,
    "open-interest": _open_interest,
    "mark-price": _marks,
    "funding-rate": _funding,
}


def parse(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    ignore_pong(frame)
    handler = HANDLERS.get(channel)
    if handler is not None:
        return handler(channel, frame, ts_recv, ctx)
    if channel == CONTROL_CHANNEL:
        _reply(decode(_CONTROL, frame))
    raise UnknownChannelError(f"okx has no channel {channel!r}")


_PROBE = msgspec.json.Decoder(_Msg[object])


def infer_channel(frame: bytes) -> str | None:
    if frame == b"pong":
        return CONTROL_CHANNEL
    try:
        probe = _PROBE.decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if probe.arg is not None:
        return probe.arg.channel
    return CONTROL_CHANNEL if probe.event is not None else None


ADAPTER = VenueAdapter(venue=VENUE, completeness=Completeness.PARTIAL, parse=parse)


# --- live protocol ----------------------------------------------------------------------------

ARGS_PER_MESSAGE = 100


def _args(instruments: Sequence[Instrument]) -> list[dict[str, str]]:
    kinds = sorted({"FUTURES" if inst.expiry else "SWAP" for inst in instruments})
    args = [{"channel": "liquidation-orders", "instType": kind} for kind in kinds]
    for inst in instruments:
        channels = ["open-interest", "mark-price"] + ([] if inst.expiry else ["funding-rate"])
        args += [{"channel": channel, "instId": inst.symbol} for channel in channels]
    return args


def _endpoints(
    instruments: Sequence[Instrument], base: str, everything: bool, heartbeat_s: float
) -> list[Endpoint]:
    messages = tuple(
        json_message({"op": "subscribe", "args": batch})
        for batch in chunks(_args(instruments), ARGS_PER_MESSAGE)
    )
    return [Endpoint("public", f"{base}/ws/v5/public", messages)]


PROTOCOL = VenueProtocol(
    venue=VENUE,
    ws_url="wss://ws.okx.com:8443",
    heartbeat=Heartbeat.TEXT_PING,
    heartbeat_interval_s=20.0,  # OKX drops a connection idle for 30 s
    stale_after_s=30.0,
    lifetime_s=None,
    endpoints=_endpoints,
    channel_of=infer_channel,
    ping="ping",
    pong=lambda frame: frame == b"pong",
)
