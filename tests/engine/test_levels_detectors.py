"""Cluster shifts, approaches and sweeps on an estimated cluster built from an OI burst.

200 BTC of new open interest at 100,000, split evenly, puts ~$2.5M of 25x longs at 96,500 and
shorts at 103,500 (bright clusters), $2M of 50x at 98,500 / 101,500, and so on.
"""

from __future__ import annotations

import numpy as np
import pytest

from liqwatch.schema import AlertStatus, Intensity, Side, SweepSignal
from processors.engine.config import ClusterConfig, GridConfig
from processors.engine.grid import PriceGrid
from processors.engine.state import RawCluster
from processors.engine.tracker import ClusterTracker
from tests.engine.events import T0, Driver, config, liq, mark, oi, quiet_marks

P = 100_000.0
BUILT = T0 + 30_000


# An even split has no side to tell (the side rule needs a price move) and the lifecycle below
# is about one burst's bands: the formed rules and tiers are those of the 25x/50x geometry in
# the docstring, with the side rule and hold off (tests/engine/test_tracker_rules.py).
LIFECYCLE = {"form_side_share": 0.0, "form_hold_s": 0, "z_medium": 2.5, "z_bright": 3.0}


def built(**sections: dict[str, object]) -> Driver:
    cluster = {**LIFECYCLE, **sections.pop("cluster", {})}
    d = Driver(config(model={"split": "even"}, cluster=cluster, **sections))
    opened = [oi(t, 1000 + (200 if t >= T0 + 20_000 else 0), P) for t in range(T0, BUILT, 1000)]
    d.feed([*quiet_marks(T0, BUILT, P), *opened])
    return d


def path(start: int, prices: list[float], step: int = 1000) -> list:  # type: ignore[type-arg]
    return [mark(start + i * step, p) for i, p in enumerate(prices)]


def glide(a: float, b: float, n: int) -> list[float]:
    return [a + (b - a) * i / (n - 1) for i in range(n)]


def test_bright_clusters_form_once_per_side() -> None:
    d = built()
    formed = [a for a in d.alerts("cluster_shift") if a.subkind == "formed"]
    assert sorted((a.side, round(a.band_lo or 0, -2)) for a in formed) == [
        (Side.LONG, 96_400.0),
        (Side.SHORT, 103_400.0),
    ]
    long_formed = next(a for a in formed if a.side is Side.LONG)
    assert long_formed.intensity is Intensity.BRIGHT
    assert long_formed.invalidation == long_formed.band_lo  # through the far edge
    assert long_formed.notional_usd == pytest.approx(2.5e6, rel=1e-3)
    assert long_formed.model == "liqwatch-heatmap/1.0"
    d.feed(quiet_marks(BUILT, BUILT + 60_000, P))  # nothing changes: no new alerts
    assert len(d.alerts("cluster_shift")) == 2


def test_clusters_dissolve_when_their_positions_close_without_a_sweep() -> None:
    d = built()
    closes = [oi(BUILT + k * 1000, 1200 - 40 * k, P) for k in range(1, 5)]  # 160 of 200 close
    d.feed([*quiet_marks(BUILT, BUILT + 10_000, P), *closes])
    dissolved = [a for a in d.alerts("cluster_shift") if a.subkind == "dissolved"]
    assert {a.side for a in dissolved} == {Side.LONG, Side.SHORT}
    assert all(a.notional_usd < 0.5 * a.details["peak_usd"] for a in dissolved)
    d.feed(quiet_marks(BUILT + 10_000, BUILT + 70_000, P))
    assert len([a for a in d.alerts("cluster_shift") if a.subkind == "dissolved"]) == 2


def sweep_down(d: Driver, confirm: bool) -> None:
    prices = glide(P, 96_000, 80)  # 50 bp a second down through the long clusters
    events = path(BUILT, prices)
    if confirm:
        in_band = [i for i, p in enumerate(prices) if 96_400 <= p <= 96_700]
        events += [liq(BUILT + i * 1000 + 500, Side.LONG, prices[i], 1_000_000) for i in in_band]
    d.feed(events)
    d.feed(quiet_marks(BUILT + 80_000, BUILT + 120_000, 96_000))


def test_sweep_confirmed_by_realized_liquidations_in_the_band() -> None:
    d = built()
    sweep_down(d, confirm=True)
    signals = [s for s in d.of(SweepSignal) if s.side is Side.LONG]
    confirmed = [s for s in signals if s.confirmed]
    assert len(confirmed) == 1
    s = confirmed[0]
    assert s.band_lo < 96_500 < s.band_hi
    assert s.estimated_notional_usd == pytest.approx(2.5e6, rel=1e-2)
    assert s.realized_notional_usd >= 1e6
    assert s.price_before > s.band_hi > s.band_lo > s.price_after
    (alert,) = [a for a in d.alerts("sweep") if a.band_lo == s.band_lo]
    assert alert.subkind == "confirmed"
    assert alert.invalidation == alert.band_hi  # reclaiming the band undoes the sweep


def test_sweep_without_confirmation_is_a_signal_not_an_alert() -> None:
    d = built()
    sweep_down(d, confirm=False)
    bright = [s for s in d.of(SweepSignal) if s.band_lo < 96_500 < s.band_hi]
    assert len(bright) == 1
    assert not bright[0].confirmed
    assert bright[0].realized_notional_usd == 0
    assert d.alerts("sweep") == []


def approach_id(d: Driver) -> str:
    (a,) = [x for x in d.alerts("approach") if x.side is Side.LONG]
    return a.alert_id


def test_approach_before_the_sweep_resolves_swept() -> None:
    d = built()
    sweep_down(d, confirm=True)
    (approach,) = [x for x in d.alerts("approach") if x.side is Side.LONG]
    sweep = next(s for s in d.of(SweepSignal) if s.confirmed)
    assert approach.created_at < sweep.ts
    distance = (approach.price_at_alert - approach.band_hi) / approach.price_at_alert  # type: ignore[operator]
    assert 0 < distance <= 0.005
    assert approach.invalidation > approach.price_at_alert
    (update,) = d.updates(approach.alert_id)
    assert update.status is AlertStatus.SWEPT


def test_approach_invalidated_when_price_moves_away() -> None:
    d = built()
    down, up = glide(P, 97_000, 30), glide(97_000, 99_000, 30)
    d.feed(path(BUILT, down + up))
    aid = approach_id(d)
    (update,) = d.updates(aid)
    assert update.status is AlertStatus.INVALIDATED
    assert update.price >= 96_689.6 / (1 - 0.015) * 0.999
    d.feed(quiet_marks(BUILT + 60_000, BUILT + 120_000, 99_000))
    assert len(d.alerts("approach")) == 1  # one approach, not one per tick


def test_approach_expires_after_its_time_to_live() -> None:
    d = built(approach={"ttl_s": 60})
    d.feed(path(BUILT, glide(P, 97_000, 30)))
    d.feed(quiet_marks(BUILT + 30_000, BUILT + 120_000, 97_000))
    aid = approach_id(d)
    (update,) = d.updates(aid)
    assert update.status is AlertStatus.EXPIRED
    assert update.ts - next(a.created_at for a in d.alerts("approach")) == pytest.approx(
        60_000, abs=1000
    )
    assert len(d.alerts("approach")) == 1  # price still hovers there: not re-armed


def test_an_old_band_coming_into_reach_is_not_news() -> None:
    """The 10x band (−9.5 %) was built an hour ago; price falling towards it shows it, but no
    new positions arrived: no "formed" alert (the 25x/50x bands on the way are swept)."""
    d = built()
    hour = BUILT + 3_600_000
    d.feed(quiet_marks(BUILT, hour, P, step=10_000))
    before = len(d.alerts("cluster_shift"))
    d.feed(path(hour, glide(P, 95_000, 120), step=500))
    d.feed(quiet_marks(hour + 60_000, hour + 120_000, 95_000))
    new = [a for a in d.alerts("cluster_shift")[before:] if a.subkind == "formed"]
    assert new == []
    tracked = d.engine.asset_engine("BTC").tracker.clusters
    assert any(
        c.lo <= d.engine.asset_engine("BTC").grid.global_index(90_500) <= c.hi for c in tracked
    )


def test_dominant_cluster_moving_is_reported_once() -> None:
    """Tracker rules on given clusters: a non-overlapping medium+ cluster holding 1.25× the
    dominant one's notional takes over (moved); smaller margins do not flap."""
    grid = PriceGrid(GridConfig())
    grid.centre_on(P)
    tracker = ClusterTracker(ClusterConfig(), grid)
    levels = np.zeros((2, grid.size))
    a_lo, b_lo = grid.global_index(97_000), grid.global_index(98_500)

    def raws(a_usd: float, b_usd: float) -> list[RawCluster]:
        return [
            RawCluster(0, a_lo, a_lo + 2, a_usd, 2.8),
            RawCluster(0, b_lo, b_lo + 2, b_usd, 2.8),
        ]

    events = tracker.update(raws(3e6, 2e6), T0, P, levels, levels)
    assert events == []  # medium clusters: nothing formed, A dominant
    for k, b_usd in enumerate([3.5e6, 3.7e6, 3.2e6]):  # within the 1.25 margin: no flapping
        assert tracker.update(raws(3e6, b_usd), T0 + (k + 1) * 1000, P, levels, levels) == []
    (moved,) = tracker.update(raws(3e6, 3.9e6), T0 + 5000, P, levels, levels)
    assert moved.subkind == "moved"
    assert moved.cluster.lo == b_lo
    assert moved.moved_from == tracker.band(tracker.clusters[0])
    assert tracker.update(raws(3e6, 3.9e6), T0 + 6000, P, levels, levels) == []
