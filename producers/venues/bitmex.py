"""BitMEX realtime: the ``liquidation`` table and the ``instrument`` table.

Side: ``side`` is the liquidation ORDER side: ``Sell`` closes a long (long liquidated).
Units: ``leavesQty`` counts contracts (XBTUSD: 1 USD each, inverse; USDT linear perps: a
fraction of a coin each, from the instrument). Frames carry no time: ``ts_event`` = ``ts_recv``.

The table is a set of liquidation ORDERS keyed by ``orderID`` (insert / update / delete; the
first ``partial`` lists orders already open). Our choice, so every contract is counted once:
an order's first sighting emits its ``leavesQty``; an update emits only an INCREASE of
``leavesQty`` over its previous value (more of the position handed to the liquidation engine);
decreases are fills of what we already counted and deletes close the order: no events. The
``event_id`` is the orderID plus the running total emitted, so a replay or a reconnect's
``partial`` of known orders produces no duplicates.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Generic, NoReturn, TypeVar

import msgspec

from liqwatch.schema import Completeness, Liquidation, MarketEvent, Side, Venue
from producers.base import IgnoredFrame, ParseContext, VenueAdapter
from producers.errors import (
    InvalidValueError,
    SchemaError,
    StateError,
    UnknownChannelError,
    VenueReplyError,
)
from producers.instruments import Instrument
from producers.live.protocol import Endpoint, Heartbeat, VenueProtocol, chunks, json_message
from producers.venues._common import (
    CONTROL_CHANNEL,
    NonNegative,
    Positive,
    Rate,
    decode,
    decoder,
    ignore_pong,
    iso_ms,
    lookup,
)
from producers.venues._state import emit_mark, emit_open_interest

VENUE = Venue.BITMEX
SIDES = {"Sell": Side.LONG, "Buy": Side.SHORT}
ORDERS_STATE_KEY = "bitmex_orders"
INSTRUMENTS_STATE_KEY = "bitmex_instruments"
MAX_OPEN_ORDERS = 50_000  # bound on remembered orders if deletes were missed

D = TypeVar("D")


class _Msg(msgspec.Struct, Generic[D], gc=False):
    table: str | None = None
    action: str | None = None
    data: list[D] | None = None
    success: bool | None = None
    info: str | None = None
    error: str | None = None
    status: int | None = None


class _LiqRow(msgspec.Struct, rename="camel", gc=False):
    order_id: str = msgspec.field(name="orderID")
    symbol: str | None = None
    side: str | None = None
    price: Positive | None = None
    leaves_qty: NonNegative | None = None


class _InstrumentRow(msgspec.Struct, rename="camel", gc=False):
    symbol: str
    mark_price: Positive | None = None
    indicative_settle_price: Positive | None = None
    funding_rate: Rate | None = None
    funding_timestamp: str | None = None
    open_interest: NonNegative | None = None
    timestamp: str | None = None


class OpenOrder:
    __slots__ = ("leaves", "price", "side", "symbol", "total")

    def __init__(self, symbol: str, side: str, price: float) -> None:
        self.symbol = symbol
        self.side = side
        self.price = price
        self.leaves = 0.0  # leavesQty last seen
        self.total = 0.0  # contracts emitted so far


class InstrumentView:
    __slots__ = ("funding", "index", "mark", "next_funding", "open_interest", "ts")

    def __init__(self) -> None:
        self.mark: float | None = None
        self.index: float | None = None
        self.funding: float | None = None
        self.next_funding: int | None = None
        self.open_interest: float | None = None
        self.ts: int | None = None


_LIQUIDATIONS = decoder(_Msg[_LiqRow])
_INSTRUMENTS = decoder(_Msg[_InstrumentRow])
_CONTROL = decoder(_Msg[object])


def _reply(msg: _Msg[D]) -> NoReturn:
    if msg.error is not None:
        raise VenueReplyError(f"{msg.status} {msg.error}")
    if msg.success is not None or msg.info is not None:
        raise IgnoredFrame("reply")
    raise SchemaError("no table data and no reply: not a BitMEX frame")


def _rows(msg: _Msg[D], channel: str) -> tuple[str, list[D]]:
    if msg.table is None or msg.data is None or msg.action is None:
        _reply(msg)
    if msg.table != channel:
        raise InvalidValueError(f"table {msg.table!r} on channel {channel!r}")
    return msg.action, msg.data


def _orders(ctx: ParseContext) -> OrderedDict[str, OpenOrder]:
    orders: OrderedDict[str, OpenOrder] | None = ctx.state.get(ORDERS_STATE_KEY)
    if orders is None:
        orders = ctx.state[ORDERS_STATE_KEY] = OrderedDict()
    return orders


def _open_order(row: _LiqRow, orders: OrderedDict[str, OpenOrder], ctx: ParseContext) -> OpenOrder:
    """The known order, or a new one for a first sighting (which needs the full row)."""
    known = orders.get(row.order_id)
    if known is not None:
        return known
    if row.symbol is None or row.side is None or row.price is None or row.leaves_qty is None:
        raise StateError(f"order {row.order_id} first seen without symbol, side, price, leavesQty")
    if row.side not in SIDES:
        raise InvalidValueError(f"unknown order side {row.side!r}")
    lookup(ctx, VENUE, row.symbol)  # an unknown instrument is rejected before it is remembered
    order = OpenOrder(row.symbol, row.side, row.price)
    orders[row.order_id] = order
    if len(orders) > MAX_OPEN_ORDERS:
        orders.popitem(last=False)
    return order


def _increase(row: _LiqRow, order: OpenOrder, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    inst = lookup(ctx, VENUE, order.symbol)
    if row.price is not None:
        order.price = row.price
    leaves = row.leaves_qty
    if leaves is None:
        return []
    added = leaves - order.leaves
    order.leaves = leaves
    if added <= 0:
        return []
    order.total += added
    base, usd = inst.value(added, order.price)
    return [
        Liquidation(
            venue=VENUE,
            symbol=order.symbol,
            instrument=inst.instrument,
            asset=inst.asset,
            side=SIDES[order.side],
            price=order.price,
            qty=base,
            notional_usd=usd,
            completeness=Completeness.COMPLETE,
            ts_event=ts_recv,
            ts_recv=ts_recv,
            event_id=f"bitmex:{row.order_id}:{order.total!r}",
        )
    ]


def _liquidations(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    try:  # inlined decode(): this is the hot path
        msg = _LIQUIDATIONS.decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError):
        decode(_LIQUIDATIONS, frame)  # raises the classified error
        raise
    action, rows = _rows(msg, channel)
    orders = _orders(ctx)
    if action == "delete":
        for row in rows:
            orders.pop(row.order_id, None)
        return []
    if action not in ("partial", "insert", "update"):
        raise InvalidValueError(f"unknown action {action!r}")
    if len(rows) == 1:  # the common case: no list to extend
        return _increase(rows[0], _open_order(rows[0], orders, ctx), ts_recv, ctx)
    out: list[MarketEvent] = []
    for row in rows:
        out += _increase(row, _open_order(row, orders, ctx), ts_recv, ctx)
    return out


def _merge(view: InstrumentView, row: _InstrumentRow) -> tuple[bool, bool]:
    next_funding = iso_ms(row.funding_timestamp) if row.funding_timestamp else None
    ts = iso_ms(row.timestamp) if row.timestamp else None
    if row.mark_price is not None:
        view.mark = row.mark_price
    if row.indicative_settle_price is not None:
        view.index = row.indicative_settle_price
    if row.funding_rate is not None:
        view.funding = row.funding_rate
    if next_funding is not None:
        view.next_funding = next_funding
    if row.open_interest is not None:
        view.open_interest = row.open_interest
    if ts is not None:
        view.ts = ts
    prices = (row.mark_price, row.indicative_settle_price, row.funding_rate)
    return prices != (None, None, None), row.open_interest is not None


def _instrument_row(
    action: str, row: _InstrumentRow, ts_recv: int, ctx: ParseContext
) -> list[MarketEvent]:
    inst = lookup(ctx, VENUE, row.symbol)
    views: dict[str, InstrumentView] = ctx.state.setdefault(INSTRUMENTS_STATE_KEY, {})
    view = views.get(row.symbol) if action == "update" else None
    view = view or InstrumentView()
    price_changed, oi_changed = _merge(view, row)
    views[row.symbol] = view
    ts = view.ts or ts_recv
    out: list[MarketEvent] = []
    if price_changed and view.mark is not None:
        out += emit_mark(
            ctx,
            inst,
            view.mark,
            ts_event=ts,
            ts_recv=ts_recv,
            index=view.index,
            funding=view.funding,
            next_funding=view.next_funding,
        )
    if oi_changed and view.open_interest is not None:
        out += emit_open_interest(ctx, inst, view.open_interest, ts, ts_recv)
    return out


def _instruments(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    action, rows = _rows(decode(_INSTRUMENTS, frame), channel)
    if action == "delete":
        return []
    if action not in ("partial", "insert", "update"):
        raise InvalidValueError(f"unknown action {action!r}")
    out: list[MarketEvent] = []
    for row in rows:
        out += _instrument_row(action, row, ts_recv, ctx)
    return out


HANDLERS = {"liquidation": _liquidations, "instrument": _instruments}


def parse(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[MarketEvent]:
    ignore_pong(frame)
    handler = HANDLERS.get(channel)
    if handler is not None:
        return handler(channel, frame, ts_recv, ctx)
    if channel == CONTROL_CHANNEL:
        _reply(decode(_CONTROL, frame))
    raise UnknownChannelError(f"bitmex has no channel {channel!r}")


class _Probe(msgspec.Struct, gc=False):
    table: str | None = None
    success: object = None
    info: object = None
    error: object = None


_PROBE = msgspec.json.Decoder(_Probe)


def infer_channel(frame: bytes) -> str | None:
    if frame == b"pong":
        return CONTROL_CHANNEL
    try:
        probe = _PROBE.decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if probe.table is not None:
        return probe.table
    replied = (probe.success, probe.info, probe.error) != (None, None, None)
    return CONTROL_CHANNEL if replied else None


ADAPTER = VenueAdapter(venue=VENUE, completeness=Completeness.COMPLETE, parse=parse)


# --- live protocol ----------------------------------------------------------------------------

ARGS_PER_MESSAGE = 50


def _endpoints(
    instruments: Sequence[Instrument], base: str, everything: bool, heartbeat_s: float
) -> list[Endpoint]:
    """Per-symbol tables: the unfiltered table would bring quanto contracts we cannot value."""
    topics = [f"{table}:{inst.symbol}" for inst in instruments for table in HANDLERS]
    messages = tuple(
        json_message({"op": "subscribe", "args": batch})
        for batch in chunks(topics, ARGS_PER_MESSAGE)
    )
    return [Endpoint("realtime", f"{base}/realtime", messages)]


PROTOCOL = VenueProtocol(
    venue=VENUE,
    ws_url="wss://ws.bitmex.com",
    heartbeat=Heartbeat.TEXT_PING,
    heartbeat_interval_s=5.0,  # BitMEX: ping when nothing arrived for 5 s
    stale_after_s=30.0,
    lifetime_s=None,
    endpoints=_endpoints,
    channel_of=infer_channel,
    ping="ping",
    pong=lambda frame: frame == b"pong",
)
