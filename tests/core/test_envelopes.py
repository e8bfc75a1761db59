from __future__ import annotations

from liqwatch.schema import Completeness, EventKind, Liquidation, MarkPrice, Side, Venue
from producers.envelopes import EnvelopeBatcher


def _liq(asset: str, i: int) -> Liquidation:
    return Liquidation(
        venue=Venue.BYBIT,
        symbol=f"{asset}USDT",
        instrument=f"{asset}-USDT-PERP",
        asset=asset,
        side=Side.LONG,
        price=100.0,
        qty=1.0,
        notional_usd=100.0,
        completeness=Completeness.COMPLETE,
        ts_event=i,
        ts_recv=i,
        event_id=f"{asset}{i}",
    )


def _mark(asset: str, i: int) -> MarkPrice:
    return MarkPrice(
        venue=Venue.BYBIT,
        symbol=f"{asset}USDT",
        instrument=f"{asset}-USDT-PERP",
        asset=asset,
        mark_price=100.0,
        ts_event=i,
        ts_recv=i,
        event_id=f"m{asset}{i}",
    )


def test_full_envelope_is_sealed_at_once_and_keeps_order() -> None:
    batcher = EnvelopeBatcher("p", max_events=3, max_delay_ms=50)
    assert batcher.add(_liq("BTC", 1), 0) is None
    assert batcher.add(_liq("BTC", 2), 0) is None
    env = batcher.add(_liq("BTC", 3), 0)
    assert env is not None
    assert [e.event_id for e in env.events] == ["BTC1", "BTC2", "BTC3"]
    assert env.kind is EventKind.LIQUIDATION
    assert batcher.pending_events == 0


def test_envelopes_split_by_kind_and_asset() -> None:
    batcher = EnvelopeBatcher("p", max_events=100, max_delay_ms=50)
    batcher.add(_liq("BTC", 1), 0)
    batcher.add(_liq("ETH", 2), 0)
    batcher.add(_mark("BTC", 3), 0)
    envs = batcher.flush_all(1)
    keys = sorted((e.kind.value, e.asset, len(e.events)) for e in envs)
    assert keys == [("liquidation", "BTC", 1), ("liquidation", "ETH", 1), ("mark_price", "BTC", 1)]
    assert len({e.seq for e in envs}) == 3


def test_delay_bound() -> None:
    batcher = EnvelopeBatcher("p", max_events=100, max_delay_ms=50)
    batcher.add(_liq("BTC", 1), 1000)
    assert batcher.flush_due(1049) == []
    due = batcher.flush_due(1050)
    assert len(due) == 1
    assert due[0].ts_flush == 1050


def test_an_envelope_never_spans_more_event_time_than_its_bound() -> None:
    batcher = EnvelopeBatcher("p", max_events=100, max_delay_ms=50, max_span_ms=250)
    assert batcher.add(_liq("BTC", 1_000), 0) is None
    assert batcher.add(_liq("BTC", 1_250), 0) is None
    sealed = batcher.add(_liq("BTC", 1_251), 0)
    assert sealed is not None
    assert [e.ts_event for e in sealed.events] == [1_000, 1_250]
    rest = batcher.flush_all(0)
    assert [e.ts_event for env in rest for e in env.events] == [1_251]


def test_span_and_size_can_seal_two_envelopes_at_once() -> None:
    batcher = EnvelopeBatcher("p", max_events=1, max_delay_ms=50, max_span_ms=10)
    first = batcher.add(_liq("BTC", 0), 0)
    assert first is not None and batcher.take_ready() == []
    batcher2 = EnvelopeBatcher("p", max_events=2, max_delay_ms=50, max_span_ms=10)
    batcher2.add(_liq("BTC", 0), 0)
    spanned = batcher2.add(_liq("BTC", 100), 0)
    assert spanned is not None and [e.ts_event for e in spanned.events] == [0]
    assert batcher2.take_ready() == []
