"""Per-venue market state kept in ``ParseContext.state``: marks, thinning, pending open interest.

Open interest often arrives in contracts or base units without a price (Binance REST, OKX
``open-interest``); its USD value needs the venue's mark price. When no mark has been seen yet
the latest open interest is held and emitted with the first mark price (never dropped; a newer
value of the same symbol supersedes an older held one, since open interest is a level).

Thinning (the design allows producers to thin price ticks): a mark price or open interest
value is emitted when it moved ≥ 1 bp since the last emitted value or ≥ 1 s (venue time)
passed; older-than-emitted values are dropped as stale. Venue time keeps replays deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

from liqwatch.schema import MarketEvent, MarkPrice, OpenInterest
from producers.base import ParseContext
from producers.instruments import Instrument

THIN_BP = 1e-4
THIN_MS = 1000
STATE_KEY = "market"


@dataclass(frozen=True, slots=True)
class PendingOpenInterest:
    contracts: float
    ts_event: int
    ts_recv: int
    event_id: str


class MarketState:
    __slots__ = ("_emitted", "marks", "pending")

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.pending: dict[str, PendingOpenInterest] = {}
        self._emitted: dict[tuple[str, str], tuple[float, int]] = {}

    def should_emit(self, kind: str, symbol: str, value: float, ts: int) -> bool:
        key = (kind, symbol)
        last = self._emitted.get(key)
        if last is not None:
            last_value, last_ts = last
            if ts < last_ts:
                return False
            moved = abs(value - last_value) >= THIN_BP * abs(last_value)
            if not moved and ts - last_ts < THIN_MS:
                return False
        self._emitted[key] = (value, ts)
        return True

    def open_interest(
        self, inst: Instrument, contracts: float, ts_event: int, ts_recv: int, event_id: str
    ) -> list[OpenInterest]:
        """The OI event valued at the latest mark, or [] and held until a mark arrives."""
        mark = self.marks.get(inst.symbol)
        if mark is None:
            self.pending[inst.symbol] = PendingOpenInterest(contracts, ts_event, ts_recv, event_id)
            return []
        if not self.should_emit("oi", inst.symbol, contracts, ts_event):
            return []
        return [
            _oi_event(inst, contracts, mark, ts_event=ts_event, ts_recv=ts_recv, event_id=event_id)
        ]

    def set_mark(self, inst: Instrument, mark: float) -> list[OpenInterest]:
        """Records a mark price; returns the held open interest it now values, if any."""
        self.marks[inst.symbol] = mark
        held = self.pending.pop(inst.symbol, None)
        if held is None:
            return []
        return self.open_interest(inst, held.contracts, held.ts_event, held.ts_recv, held.event_id)


def market_state(ctx: ParseContext) -> MarketState:
    state = ctx.state.get(STATE_KEY)
    if state is None:
        state = ctx.state[STATE_KEY] = MarketState()
    assert isinstance(state, MarketState)
    return state


def _oi_event(
    inst: Instrument, contracts: float, mark: float, *, ts_event: int, ts_recv: int, event_id: str
) -> OpenInterest:
    base, usd = inst.value(contracts, mark)
    return OpenInterest(
        venue=inst.venue,
        symbol=inst.symbol,
        instrument=inst.instrument,
        asset=inst.asset,
        oi_base=base,
        oi_usd=usd,
        ts_event=ts_event,
        ts_recv=ts_recv,
        event_id=event_id,
    )


def mark_event(
    inst: Instrument,
    mark: float,
    *,
    ts_event: int,
    ts_recv: int,
    event_id: str,
    index: float | None = None,
    funding: float | None = None,
    next_funding: int | None = None,
) -> MarkPrice:
    return MarkPrice(
        venue=inst.venue,
        symbol=inst.symbol,
        instrument=inst.instrument,
        asset=inst.asset,
        mark_price=mark,
        index_price=index,
        funding_rate=funding,
        next_funding_time=next_funding,
        ts_event=ts_event,
        ts_recv=ts_recv,
        event_id=event_id,
    )


def emit_mark(
    ctx: ParseContext,
    inst: Instrument,
    mark: float,
    *,
    ts_event: int,
    ts_recv: int,
    index: float | None = None,
    funding: float | None = None,
    next_funding: int | None = None,
) -> list[MarketEvent]:
    """Mark price (thinned) plus any open interest that was waiting for a mark."""
    state = market_state(ctx)
    out: list[MarketEvent] = []
    if state.should_emit("mark", inst.symbol, mark, ts_event):
        event_id = f"{inst.venue}:{inst.symbol}:mark:{ts_event}"
        out.append(
            mark_event(
                inst,
                mark,
                ts_event=ts_event,
                ts_recv=ts_recv,
                event_id=event_id,
                index=index,
                funding=funding,
                next_funding=next_funding,
            )
        )
    out.extend(state.set_mark(inst, mark))
    return out


def emit_open_interest(
    ctx: ParseContext, inst: Instrument, contracts: float, ts_event: int, ts_recv: int
) -> list[MarketEvent]:
    event_id = f"{inst.venue}:{inst.symbol}:oi:{ts_event}"
    return list(market_state(ctx).open_interest(inst, contracts, ts_event, ts_recv, event_id))


def emit_valued_open_interest(
    ctx: ParseContext, inst: Instrument, base: float, usd: float, *, ts_event: int, ts_recv: int
) -> list[MarketEvent]:
    """Open interest the venue already valued in base and USD (OKX ``oiCcy``/``oiUsd``)."""
    if not market_state(ctx).should_emit("oi", inst.symbol, base, ts_event):
        return []
    event_id = f"{inst.venue}:{inst.symbol}:oi:{ts_event}"
    return [
        OpenInterest(
            venue=inst.venue,
            symbol=inst.symbol,
            instrument=inst.instrument,
            asset=inst.asset,
            oi_base=base,
            oi_usd=usd,
            ts_event=ts_event,
            ts_recv=ts_recv,
            event_id=event_id,
        )
    ]
