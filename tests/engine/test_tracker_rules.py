"""Tracker rules for announcing a cluster as formed (docs/model.md, "Cluster shift"): the
burst's largest band only (off by default), only on the side the burst of new open interest was
attributed to (on by default, 0.55), and only once both held for ``form_hold_s`` (20 s by
default). Each test turns on the rules it is about; ``setup`` starts from all of them off."""

from __future__ import annotations

import numpy as np
import pytest

from processors.engine.common import LONG, SHORT
from processors.engine.config import ClusterConfig, GridConfig
from processors.engine.grid import PriceGrid
from processors.engine.state import RawCluster
from processors.engine.tracker import ClusterTracker, ShiftEvent
from tests.engine.events import T0

P = 100_000.0
BRIGHT_Z = 3.5


def setup(**cfg: float) -> tuple[PriceGrid, ClusterTracker, np.ndarray]:
    grid = PriceGrid(GridConfig())
    grid.centre_on(P)
    rules = {"form_side_share": 0.0, "form_hold_s": 0, **cfg}
    return grid, ClusterTracker(ClusterConfig(**rules), grid), np.zeros((2, grid.size))  # type: ignore[arg-type]


def band(grid: PriceGrid, side: int, price: float, usd: float) -> RawCluster:
    lo = grid.global_index(price)
    return RawCluster(side, lo, lo + 2, usd, BRIGHT_Z)


def fill(grid: PriceGrid, layer: np.ndarray, raw: RawCluster) -> None:
    """Puts the cluster's notional in its buckets (all of it new positions)."""
    a, b = raw.lo - grid.offset, raw.hi - grid.offset + 1
    layer[raw.side, a:b] = raw.notional / (b - a)


def formed(events: list[ShiftEvent]) -> list[tuple[int, int]]:
    return [(e.cluster.side, e.cluster.lo) for e in events if e.subkind == "formed"]


def seen_twice(
    tracker: ClusterTracker, raws: list[RawCluster], layer: np.ndarray, fresh: np.ndarray
) -> list[ShiftEvent]:
    """A cluster is registered when first seen and can be announced from its next evaluation."""
    assert tracker.update(raws, T0, P, layer, fresh) == []
    return tracker.update(raws, T0 + 1000, P, layer, fresh)


def test_only_the_largest_band_of_a_burst_is_announced() -> None:
    """One burst of new OI lands on every leverage tier; the model cannot tell which tier the
    traders used, so the 25x-like band (largest) is announced and the 50x-like one is not."""
    grid, tracker, layer = setup(form_largest_share=1.0)
    big, small = band(grid, LONG, 96_500, 4e6), band(grid, LONG, 98_500, 3e6)
    fill(grid, layer, big)
    fill(grid, layer, small)
    events = seen_twice(tracker, [big, small], layer, layer)
    assert formed(events) == [(LONG, big.lo)]
    later = tracker.update([big, small], T0 + 2000, P, layer, layer)
    assert formed(later) == []  # the smaller sibling stays silent while the burst is fresh


def test_without_the_rules_every_new_bright_band_is_announced() -> None:
    grid, tracker, layer = setup()
    big, small = band(grid, LONG, 96_500, 4e6), band(grid, LONG, 98_500, 3e6)
    fill(grid, layer, big)
    fill(grid, layer, small)
    events = seen_twice(tracker, [big, small], layer, layer)
    assert sorted(formed(events)) == sorted([(LONG, big.lo), (LONG, small.lo)])


@pytest.mark.parametrize(("long_usd", "expected"), [(7e6, [LONG]), (3e6, [SHORT])])
def test_side_rule_announces_the_side_the_new_positions_went_to(
    long_usd: float, expected: list[int]
) -> None:
    """With form_side_share 0.6, a band is announced only if its side holds ≥ 60 % of all new
    (fresh) notional: the other side's band is the mirror image of the same burst."""
    grid, tracker, layer = setup(form_side_share=0.6)
    longs, shorts = band(grid, LONG, 96_500, long_usd), band(grid, SHORT, 103_500, 10e6 - long_usd)
    fill(grid, layer, longs)
    fill(grid, layer, shorts)
    events = seen_twice(tracker, [longs, shorts], layer, layer)
    assert [side for side, _ in formed(events)] == expected


def test_without_the_side_rule_both_mirrors_are_announced() -> None:
    grid, tracker, layer = setup()
    longs, shorts = band(grid, LONG, 96_500, 5e6), band(grid, SHORT, 103_500, 5e6)
    fill(grid, layer, longs)
    fill(grid, layer, shorts)
    events = seen_twice(tracker, [longs, shorts], layer, layer)
    assert sorted(side for side, _ in formed(events)) == [LONG, SHORT]


def test_old_positions_are_not_news() -> None:
    """A band that is bright but mostly old positions (fresh copy faded) is not 'formed'."""
    grid, tracker, layer = setup()
    raw = band(grid, LONG, 96_500, 4e6)
    fill(grid, layer, raw)
    events = seen_twice(tracker, [raw], layer, layer * 0.5)  # only 50 % new < 60 %
    assert formed(events) == []


def test_defaults_use_the_side_rule_and_the_hold() -> None:
    cfg = ClusterConfig()
    assert cfg.form_side_share == 0.55 and cfg.form_hold_s == 20 and cfg.form_largest_share == 0


def test_formed_waits_until_the_rules_held_for_form_hold_s() -> None:
    """Early in a burst its side is not in the price yet: a band announced only after the
    side rule held for the whole hold, and a break in between starts the hold again."""
    grid, tracker, layer = setup(form_side_share=0.6, form_hold_s=5)
    longs, shorts = band(grid, LONG, 96_500, 7e6), band(grid, SHORT, 103_500, 3e6)
    fill(grid, layer, longs)
    fill(grid, layer, shorts)
    mirror = layer.copy()
    mirror[[LONG, SHORT]] = layer[[SHORT, LONG]]  # for a moment the shorts hold 70 %
    assert tracker.update([longs, shorts], T0, P, layer, layer) == []
    for k in range(1, 4):
        assert formed(tracker.update([longs, shorts], T0 + k * 1000, P, layer, layer)) == []
    assert formed(tracker.update([longs, shorts], T0 + 4000, P, layer, mirror)) == []  # break
    for k in range(5, 10):
        assert formed(tracker.update([longs, shorts], T0 + k * 1000, P, layer, layer)) == []
    events = tracker.update([longs, shorts], T0 + 10_000, P, layer, layer)
    assert formed(events) == [(LONG, longs.lo)]  # 5 s after the break, never the mirror
