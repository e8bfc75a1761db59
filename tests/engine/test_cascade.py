"""Cascade lifecycle, hysteresis, whales, the price condition and sampled feeds."""

from __future__ import annotations

import pytest

from liqwatch.schema import (
    AlertStatus,
    CascadePhase,
    CascadeSignal,
    Completeness,
    Side,
    Venue,
)
from tests.engine.events import T0, Driver, liq, mark, oi, quiet_marks

P = 100_000.0


def falling(start: int, seconds: float, drop_pct: float, p0: float = P) -> list:  # type: ignore[type-arg]
    """Mark prices every 100 ms falling linearly by ``drop_pct`` over ``seconds``."""
    steps = int(seconds * 10)
    return [mark(start + i * 100, p0 * (1 - drop_pct / 100 * i / steps)) for i in range(steps)]


def burst(start: int, seconds: float, usd_per_100ms: float, side: Side = Side.LONG) -> list:  # type: ignore[type-arg]
    venues = [Venue.BYBIT, Venue.OKX]
    return [
        liq(start + i * 100 + 7, side, P * 0.99, usd_per_100ms, venue=venues[i % 2])
        for i in range(int(seconds * 10))
    ]


def phases(d: Driver) -> list[CascadePhase]:
    return [s.phase for s in d.of(CascadeSignal)]


def test_lifecycle_started_escalated_ended_with_final_stats() -> None:
    d = Driver()
    d.feed(quiet_marks(T0, T0 + 60_000, P))
    c0 = T0 + 60_000
    d.feed([*falling(c0, 10, 1.0), *burst(c0, 10, 100_000)])  # $1M/s for 10 s
    d.feed(quiet_marks(c0 + 10_000, c0 + 60_000, P * 0.99))
    assert phases(d)[0] is CascadePhase.STARTED
    assert CascadePhase.ESCALATED in phases(d)
    assert phases(d)[-1] is CascadePhase.ENDED
    assert phases(d).count(CascadePhase.STARTED) == 1
    (alert,) = d.alerts("cascade")
    first_liq = c0 + 7
    assert alert.alert_id == f"cascade-BTC-long-{first_liq}"
    assert alert.side is Side.LONG
    assert alert.created_at - first_liq <= 3_000  # $2M floor reached after ~2 s
    assert alert.invalidation == pytest.approx(P, rel=2e-3)  # back above where it started
    assert alert.details["venues"] == 2
    assert alert.details["confidence"] == 0.75
    assert {v.venue for v in alert.venues} == {"bybit", "okx"}
    ended = [u for u in d.updates(alert.alert_id) if u.status is AlertStatus.ENDED]
    assert len(ended) == 1
    assert ended[0].details["total_notional_usd"] == pytest.approx(10e6)
    assert ended[0].details["events"] == 100
    assert ended[0].details["duration_s"] == pytest.approx(10, abs=1.5)
    assert ended[0].details["price_move_pct"] < -0.9
    final = d.of(CascadeSignal)[-1]
    assert final.peak_rate_usd_s == pytest.approx(1e6)


def test_activity_hovering_at_the_threshold_does_not_flap() -> None:
    """$2M per 10 s, give or take 10 %, for two minutes: one cascade, ended once."""
    d = Driver()
    d.feed(quiet_marks(T0, T0 + 60_000, P))
    c0 = T0 + 60_000
    events = []
    for second in range(120):
        usd = 200_000 * (1.1 if second % 2 else 0.9)
        events += [liq(c0 + second * 1000 + k * 250, Side.LONG, P, usd / 4) for k in range(4)]
    d.feed([*falling(c0, 120, 3.0), *events])
    d.feed(quiet_marks(c0 + 120_000, c0 + 200_000, P * 0.97))
    assert phases(d).count(CascadePhase.STARTED) == 1
    assert phases(d).count(CascadePhase.ENDED) == 1
    assert len(d.alerts("cascade")) == 1
    ended = next(s for s in d.of(CascadeSignal) if s.phase is CascadePhase.ENDED)
    assert ended.duration_ms >= 115_000


def test_a_whale_is_not_a_cascade() -> None:
    d = Driver()
    d.feed(quiet_marks(T0, T0 + 60_000, P))
    c0 = T0 + 60_000
    whale = [liq(c0 + 500, Side.LONG, P, 5_000_000), liq(c0 + 900, Side.LONG, P, 40_000)]
    d.feed([*falling(c0, 10, 1.0), *whale, liq(c0 + 1500, Side.LONG, P, 30_000)])
    d.feed(quiet_marks(c0 + 10_000, c0 + 60_000, P * 0.99))
    assert d.of(CascadeSignal) == []
    assert d.alerts("cascade") == []


def test_no_cascade_without_price_moving_in_the_forcing_direction() -> None:
    d = Driver()
    d.feed(quiet_marks(T0, T0 + 60_000, P))
    c0 = T0 + 60_000
    rising = [mark(c0 + i * 100, P * (1 + 0.005 * i / 100)) for i in range(100)]
    d.feed([*rising, *burst(c0, 10, 100_000)])  # longs liquidated while price rises
    assert d.alerts("cascade") == []


def test_shorts_squeezed_upwards_is_a_short_cascade() -> None:
    d = Driver()
    d.feed(quiet_marks(T0, T0 + 60_000, P))
    c0 = T0 + 60_000
    rising = [mark(c0 + i * 100, P * (1 + 0.01 * i / 100)) for i in range(100)]
    d.feed([*rising, *burst(c0, 10, 100_000, Side.SHORT)])
    (alert,) = d.alerts("cascade")
    assert alert.side is Side.SHORT
    assert alert.invalidation < alert.price_at_alert


def test_sampled_feed_cascade_is_seen_through_the_open_interest_fall() -> None:
    """Binance shows one liquidation per second; the OI poll shows the real size."""
    d = Driver()
    contracts = 10_000.0
    polls = [oi(t, contracts, P, venue=Venue.BINANCE) for t in range(T0, T0 + 60_000, 10_000)]
    d.feed([*quiet_marks(T0, T0 + 60_000, P, venue=Venue.BINANCE), *polls])
    c0 = T0 + 60_000
    shown = [
        liq(c0 + s * 1000 + 300, Side.LONG, P, 80_000, venue=Venue.BINANCE,
            completeness=Completeness.SAMPLED)
        for s in range(8)
    ]  # fmt: skip
    marks = [mark(c0 + i * 100, P * (1 - 0.01 * i / 100), venue=Venue.BINANCE) for i in range(100)]
    d.feed([*marks, *shown])
    assert d.alerts("cascade") == []  # $640k shown: below the floor
    d.feed([oi(c0 + 10_000, contracts - 150, P * 0.99, venue=Venue.BINANCE)])  # −$15M
    (alert,) = d.alerts("cascade")
    assert alert.created_at == c0 + 10_000
    assert alert.details["window_notional_usd"] > 10e6
    assert [v.completeness for v in alert.venues] == [Completeness.SAMPLED]
