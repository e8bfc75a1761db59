"""The tick path's fast paths (tick4) give bit-identical results to the forms they replaced.

- ``find_clusters`` calls numpy's correlate kernel directly (``_smooth``), finds the runs of hot
  buckets in one Python pass (``runs_at_least``), sums short runs in Python (``run_sum``) and
  builds ``RawCluster`` as a frozen msgspec struct; the reference is the previous version.
- ``tier_for`` picks the tier without a loop; ``slice_sum`` sums short slices in Python.
- ``ClusterTracker`` sums each side's fresh notional once per evaluation, matches without the
  min/max builtins, gathers the dominance candidates of both sides in one pass and picks the
  best and the current dominant one in one loop (``_best_and_current``); the references are
  the previous methods, patched in for the end-to-end comparison.
- ``ApproachDetector.check``/``resolve`` skip building sets nothing will look up;
  ``AssetEngine._pressure`` skips the seconds on which ``PressureTracker.due`` says no
  timeframe samples.
- ``PriceGrid.index`` inlines ``global_index``; ``AssetEngine._evaluate_clusters`` calls
  ``find_clusters`` for the two sides without a nested comprehension.
- ``snapshots.sparse`` gathers the non-zero entries with one ``tolist`` instead of a numpy
  scalar per entry.

Helpers that replace a numpy expression get a hypothesis property test against it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqwatch.schema import Intensity
from processors.engine import EngineConfig, claims
from processors.engine import asset as asset_module
from processors.engine import snapshots as snapshots_module
from processors.engine import tracker as tracker_module
from processors.engine.approach import ApproachDetector, ApproachResolution
from processors.engine.asset import AssetEngine
from processors.engine.clusters import (
    TIERS,
    _smooth,
    find_clusters,
    runs_at_least,
    side_window,
    tier_for,
)
from processors.engine.common import LONG, SHORT
from processors.engine.config import ClusterConfig, GridConfig
from processors.engine.grid import PriceGrid
from processors.engine.pressure import PressureTracker
from processors.engine.state import OpenApproach, RawCluster, TrackedCluster
from processors.engine.sums import run_sum, slice_sum
from processors.engine.tracker import ClusterTracker, ShiftEvent
from tests.engine.references import consecutive_runs
from tests.engine.replay import assert_same_run, run_engine, stress_blobs

# swaps engine functions for their references: runs on the Python sources
pytestmark = pytest.mark.interpreted

PRICE = 60_000.0

usd = st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False)
signed = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def reference_find_clusters(
    density: np.ndarray,
    grid: PriceGrid,
    side: int,
    price: float,
    *,
    cfg: ClusterConfig,
    floor_z: float,
    both_halves: bool = False,
) -> list[RawCluster]:
    """find_clusters before tick4: np.convolve, flatnonzero + consecutive_runs, numpy sums."""
    if both_halves:
        a, b = grid.span_indices(price, cfg.window_pct)
    else:
        a, b = side_window(grid, side, price, cfg.window_pct)
    window = density[a:b]
    total = float(np.add.reduce(window))
    if b - a < 3 or total <= 0:
        return []
    k = max(1, cfg.smooth_buckets)
    smooth = np.convolve(window, np.ones(k) / k, mode="same")
    deviation = smooth - float(np.add.reduce(smooth)) / smooth.size
    std = math.sqrt(float(np.add.reduce(deviation * deviation)) / smooth.size)
    if std <= 0:
        return []
    z_scores = deviation / std
    hot = np.flatnonzero(z_scores >= floor_z).tolist()
    if not hot:
        return []
    z = z_scores.tolist()
    out = []
    for lo, hi in consecutive_runs(hot):
        notional = float(np.add.reduce(window[lo : hi + 1]))
        if notional >= max(cfg.min_share * total, cfg.min_usd):
            peak = max(z[lo : hi + 1])
            out.append(RawCluster(side, a + lo + grid.offset, a + hi + grid.offset, notional, peak))
    return out


def random_density(rng: np.random.Generator, grid: PriceGrid) -> np.ndarray:
    """Sparse-ish levels with a few wide and narrow bands, zeros and tiny values."""
    density = rng.exponential(2e5, grid.size) * (rng.random(grid.size) < 0.7)
    for _ in range(int(rng.integers(1, 8))):
        lo = int(rng.integers(0, grid.size - 20))
        density[lo : lo + int(rng.integers(1, 16))] += rng.exponential(5e6)
    density[rng.random(grid.size) < 0.05] = 1e-3
    return density


@pytest.mark.parametrize("seed", range(8))
def test_find_clusters_matches_the_previous_version(seed: int) -> None:
    rng = np.random.default_rng(seed)
    grid = PriceGrid(GridConfig())
    grid.centre_on(PRICE)
    checked = 0
    for smooth_buckets in (1, 3, 5, 200):
        cfg = ClusterConfig(smooth_buckets=smooth_buckets, min_usd=1e5)
        for _ in range(30):
            density = random_density(rng, grid)
            price = PRICE * float(rng.uniform(0.97, 1.03))
            for side in (LONG, SHORT):
                for both in (False, True):
                    for floor_z in (1.0, 1.5, 2.5):
                        got = find_clusters(
                            density, grid, side, price, cfg=cfg, floor_z=floor_z, both_halves=both
                        )
                        want = reference_find_clusters(
                            density, grid, side, price, cfg=cfg, floor_z=floor_z, both_halves=both
                        )
                        assert got == want
                        checked += len(got)
    assert checked > 100  # the comparison saw many clusters, long and short runs among them


def test_find_clusters_degenerate_windows_match_the_previous_version() -> None:
    grid = PriceGrid(GridConfig())
    grid.centre_on(PRICE)
    cfg = ClusterConfig(min_usd=0.0, min_share=0.0)
    edge_price = grid.lower_edge(2)  # the long window is cut by the grid's edge
    cases = [np.zeros(grid.size), np.full(grid.size, 5.0), np.ones(grid.size)]
    spike = np.zeros(grid.size)
    spike[grid.index(PRICE) - 3] = 1e7
    wide = np.zeros(grid.size)
    wide[grid.index(PRICE) - 30 : grid.index(PRICE) - 10] = 1e7  # a run longer than 8
    cases += [spike, wide]
    for density in cases:
        for price in (PRICE, edge_price):
            for side in (LONG, SHORT):
                got = find_clusters(density, grid, side, price, cfg=cfg, floor_z=1.0)
                want = reference_find_clusters(density, grid, side, price, cfg=cfg, floor_z=1.0)
                assert got == want
    (band,) = find_clusters(wide, grid, LONG, PRICE, cfg=cfg, floor_z=1.0)
    assert band.hi - band.lo >= 8  # the numpy branch of run_sum was compared too


@settings(max_examples=300, deadline=None)
@given(st.lists(usd, min_size=1, max_size=40), st.data())
def test_run_sum_is_numpy_sum_bit_for_bit(values: list[float], data: st.DataObject) -> None:
    window = np.array(values)
    lo = data.draw(st.integers(0, len(values) - 1))
    hi = data.draw(st.integers(lo + 1, len(values)))
    got = run_sum(window, values, lo, hi)
    assert got.hex() == float(window[lo:hi].sum()).hex()


@settings(max_examples=200, deadline=None)
@given(st.lists(signed, min_size=1, max_size=7))
def test_run_sum_short_runs_keep_numpy_order_with_signs(values: list[float]) -> None:
    window = np.array(values)
    assert run_sum(window, values, 0, len(values)).hex() == float(window.sum()).hex()


def test_run_sum_order_matters_where_it_is_claimed() -> None:
    # 1e16 + 1 + 1: numpy (and run_sum) add left to right from 0.0, so each 1 is rounded away
    values = [1e16, 1.0, 1.0]
    assert run_sum(np.array(values), values, 0, 3) == 1e16 == float(np.array(values).sum())
    assert 1e16 + (1.0 + 1.0) != 1e16


@settings(max_examples=300, deadline=None)
@given(st.lists(signed, max_size=80), signed)
def test_runs_at_least_matches_the_mask_runs(z: list[float], floor: float) -> None:
    hot = np.flatnonzero(np.array(z, dtype=np.float64) >= floor).tolist()
    assert runs_at_least(z, floor) == consecutive_runs(hot)


@settings(max_examples=200, deadline=None)
@given(st.lists(usd, min_size=1, max_size=80), st.integers(1, 9))
def test_smooth_is_np_convolve_same(values: list[float], k: int) -> None:
    window = np.array(values)
    want = np.convolve(window, np.ones(k) / k, mode="same")
    got = _smooth(window, k)
    assert got.shape == want.shape
    assert got.tobytes() == want.tobytes()


def reference_tier_for(z: float, current: Intensity | None, cfg: ClusterConfig) -> Intensity | None:
    thresholds = (cfg.z_dim, cfg.z_medium, cfg.z_bright)
    rank = -1
    for i, threshold in enumerate(thresholds):
        if z >= threshold:
            rank = i
    if current is None or rank > TIERS.index(current):
        return TIERS[rank] if rank >= 0 else None
    level = TIERS.index(current)
    while level >= 0 and z < thresholds[level] - cfg.hysteresis_z:
        level -= 1
    return TIERS[level] if level >= 0 else None


zs = st.floats(min_value=-1.0, max_value=6.0, allow_nan=False)


@settings(max_examples=400, deadline=None)
@given(zs, st.sampled_from([None, *TIERS]), zs, zs, zs, st.floats(0.0, 2.0))
def test_tier_for_matches_the_loop(
    z: float,
    current: Intensity | None,
    dim: float,
    medium: float,
    bright: float,
    hysteresis: float,
) -> None:
    # thresholds in any order: the rank is the highest tier reached, as the loop had it
    cfg = ClusterConfig(z_dim=dim, z_medium=medium, z_bright=bright, hysteresis_z=hysteresis)
    assert tier_for(z, current, cfg) is reference_tier_for(z, current, cfg)


@settings(max_examples=300, deadline=None)
@given(st.lists(usd, max_size=40), st.data())
def test_slice_sum_is_numpy_sum_bit_for_bit(values: list[float], data: st.DataObject) -> None:
    row = np.array(values, dtype=np.float64)
    lo = data.draw(st.integers(0, len(values)))
    hi = data.draw(st.integers(lo, len(values)))
    assert slice_sum(row[lo:hi]).hex() == float(row[lo:hi].sum()).hex()


def reference_match(self: ClusterTracker, raw: RawCluster, seen: set[str]) -> TrackedCluster | None:
    best, best_overlap = None, 0
    for c in self.state.clusters:
        if c.side != raw.side or c.cid in seen:
            continue
        overlap = min(c.hi, raw.hi) - max(c.lo, raw.lo) + 2
        if overlap > best_overlap:
            best, best_overlap = c, overlap
    return best


def reference_is_news(self: ClusterTracker, c: TrackedCluster, fresh: np.ndarray) -> bool:
    a, b = c.lo - self.grid.offset, c.hi - self.grid.offset + 1
    new = float(fresh[c.side, max(a, 0) : max(b, 0)].sum())
    if new < self.cfg.form_fresh_share * c.notional:
        return False
    if new < self.cfg.form_largest_share * self._largest_new[c.side]:
        return False
    if self.cfg.form_side_share <= 0:
        return True
    mine, other = float(fresh[c.side].sum()), float(fresh[1 - c.side].sum())
    return mine >= self.cfg.form_side_share * (mine + other)


def reference_emptied(self: ClusterTracker, c: TrackedCluster, density: np.ndarray) -> bool:
    lo = max(c.band_lo - self.grid.offset, 0)
    hi = min(c.band_hi - self.grid.offset + 1, density.shape[-1])
    c.band_usd = float(density[c.side, lo:hi].sum()) if hi > lo else 0.0
    c.peak_usd = max(c.peak_usd, c.band_usd)
    return c.band_usd < self.cfg.dissolve_ratio * c.peak_usd


def reference_dominance(self: ClusterTracker, now: int, price: float) -> list[ShiftEvent]:
    events: list[ShiftEvent] = []
    for side in (0, 1):
        candidates = [
            c
            for c in self.state.clusters
            if c.side == side
            and c.tier in (Intensity.MEDIUM, Intensity.BRIGHT)
            and not c.ever_touched
            and self.in_reach(c, price)
        ]
        if not candidates:
            self.state.dominant[side] = ""
            continue
        best = max(candidates, key=lambda c: (c.notional, -c.lo))
        current = next((c for c in candidates if c.cid == self.state.dominant[side]), None)
        if current is None:
            self.state.dominant[side] = best.cid
            continue
        if best is not current and best.notional >= self.cfg.dominant_margin * current.notional:
            self.state.dominant[side] = best.cid
            events += self._moved(best, current, now)
    return events


def reference_check(
    self: ApproachDetector, now: int, price: float, tracker: ClusterTracker
) -> list[OpenApproach]:
    opened: list[OpenApproach] = []
    busy = {a.cid for a in self.state.open} | set(self.state.disarmed)
    for c in tracker.clusters:
        if c.tier is not Intensity.BRIGHT or c.ever_touched or c.cid in busy:
            continue
        distance = tracker.distance_pct(c, price)
        if 0 < distance <= self.cfg.distance_pct:
            opened.append(self._open(c, tracker, now, price))
    self.state.open += opened
    return opened


def reference_resolve(
    self: ApproachDetector, now: int, price: float, tracker: ClusterTracker, swept: list[str]
) -> list[ApproachResolution]:
    out: list[ApproachResolution] = []
    still: list[OpenApproach] = []
    alive = {c.cid for c in tracker.clusters}
    for a in self.state.open:
        status = self._status(a, now, price, alive, swept)
        if status is None:
            still.append(a)
            continue
        out.append(ApproachResolution(a, status, now, price))
        if a.cid in alive:
            self.state.disarmed.append(a.cid)
    self.state.open = still
    by_id = {c.cid: c for c in tracker.clusters}
    self.state.disarmed = [
        cid
        for cid in self.state.disarmed
        if cid in by_id and tracker.distance_pct(by_id[cid], price) < self.cfg.rearm_pct
    ]
    return out


def reference_pressure(self: AssetEngine, t: int) -> list[Any]:
    st = self.realized.state
    x = [float(st.totals[tf, 1] - st.totals[tf, 0]) for tf in range(st.totals.shape[0])]
    out: list[Any] = []
    for shift in self.pressure.tick(t, x):
        if self.price > 0:
            inv = self.cfg.pressure.invalidation_pct
            out += self.report.alert(
                claims.pressure_claim(self.asset, shift, t, self.price, inv), t
            )
    return out


def reference_evaluate_clusters(self: AssetEngine, t: int) -> list[Any]:
    cfg = self.cfg.cluster
    floor_z = cfg.z_dim - cfg.hysteresis_z
    levels = self.estimated.state.levels
    raws = [
        raw
        for side in (0, 1)
        for raw in reference_find_clusters(
            levels[side], self.grid, side, self.price, cfg=cfg, floor_z=floor_z
        )
    ]
    out: list[Any] = []
    fresh = self.estimated.state.fresh
    for event in self.tracker.update(raws, t, self.price, levels, fresh):
        band = self.tracker.band(event.cluster)
        out += self.report.alert(claims.shift_claim(self.asset, event, band, self.price), t)
    out += self._approaches(t, self.price, [])
    return out


def reference_sparse(values: np.ndarray, lo: int = 0) -> list[tuple[int, float]]:
    nz = np.flatnonzero(values > 0)
    return [(int(i) + lo, float(values[i])) for i in nz]


def patch_references(patch: pytest.MonkeyPatch) -> None:
    """Every form tick4 replaced, back in place."""
    patch.setattr(asset_module, "find_clusters", reference_find_clusters)
    patch.setattr(snapshots_module, "find_clusters", reference_find_clusters)
    patch.setattr(snapshots_module, "tier_for", reference_tier_for)
    patch.setattr(tracker_module, "tier_for", reference_tier_for)
    patch.setattr(ClusterTracker, "_match", reference_match)
    patch.setattr(ClusterTracker, "_is_news", reference_is_news)
    patch.setattr(ClusterTracker, "_emptied", reference_emptied)
    patch.setattr(ClusterTracker, "_dominance", reference_dominance)
    patch.setattr(ApproachDetector, "check", reference_check)
    patch.setattr(ApproachDetector, "resolve", reference_resolve)
    patch.setattr(AssetEngine, "_pressure", reference_pressure)
    patch.setattr(snapshots_module, "sparse", reference_sparse)
    patch.setattr(AssetEngine, "_evaluate_clusters", reference_evaluate_clusters)


@pytest.mark.parametrize(("span_ms", "events"), [(2_000, 40_000), (250, 30_000)])
def test_tick_path_is_bit_identical_end_to_end(
    span_ms: int, events: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    envelopes = stress_blobs(events, span_ms)
    fast = run_engine(envelopes)
    with monkeypatch.context() as patch:
        patch_references(patch)
        reference = run_engine(envelopes)
    assert_same_run(fast, reference)
    # the comparison covers the tick path's outputs: shifts, approaches, both snapshot kinds
    outputs = b"\n".join(fast[0])
    for marker in (
        b'"formed"',
        b'"moved"',
        b'"approaching"',
        b'"type":"heatmap"',
        b'"type":"cluster"',
    ):
        assert marker in outputs, marker


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2_000_000_000_000),
    st.lists(st.integers(1, 7200), min_size=1, max_size=4),
)
def test_pressure_due_is_any_cadence(now: int, timeframes_s: list[int]) -> None:
    tracker = PressureTracker(
        EngineConfig.default().for_asset("BTC").pressure, tuple(timeframes_s), None
    )
    want = any(now % cadence == 0 for cadence in tracker.cadence_ms)
    assert tracker.due(now) is want
    assert tracker.due(now - now % tracker.cadence_ms[0])  # a cadence's multiple always is


def test_pressure_due_matches_tick_sampling() -> None:
    cfg = EngineConfig.default().for_asset("BTC")
    tracker = PressureTracker(cfg.pressure, cfg.realized.timeframes_s, None)
    due = [t for t in range(0, 3_600_000, 1000) if tracker.due(t)]
    for t in range(0, 3_600_000, 1000):
        before = tracker.state.count.copy()
        tracker.tick(t, [1.0, 2.0, 3.0])
        assert (not np.array_equal(before, tracker.state.count)) is (t in due)
    assert 0 < len(due) < 3600 // 10


def tracked(cid: str, lo: int, notional: float) -> TrackedCluster:
    return TrackedCluster(
        cid=cid,
        side=LONG,
        lo=lo,
        hi=lo + 2,
        notional=notional,
        peak_z=3.0,
        tier=Intensity.BRIGHT,
        first_seen=0,
        last_seen=0,
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.sampled_from([1.0, 2.0, 2.5, 1e6])), min_size=1, max_size=8
    ),
    st.integers(-1, 8),
)
def test_best_and_current_is_max_and_next(bands: list[tuple[int, float]], dominant_at: int) -> None:
    # few distinct values: ties in notional and in lo are common, and which one wins matters
    candidates = [tracked(f"c{i}", lo, usd) for i, (lo, usd) in enumerate(bands)]
    candidates += candidates[:1]  # the same cluster twice: the first occurrence wins
    dominant = f"c{dominant_at}"
    best, current = ClusterTracker._best_and_current(candidates, dominant)
    assert best is max(candidates, key=lambda c: (c.notional, -c.lo))
    assert current is next((c for c in candidates if c.cid == dominant), None)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(usd, st.just(0.0), st.just(-1.0), st.just(math.nan)), max_size=60))
def test_sparse_matches_scalar_gather(values: list[float]) -> None:
    array = np.array(values, dtype=np.float64)
    for lo in (0, 17):
        got = snapshots_module.sparse(array, lo)
        assert got == reference_sparse(array, lo)
        assert all(type(i) is int and type(v) is float for i, v in got)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=1e-8, max_value=1e9, allow_nan=False, allow_infinity=False),
    st.integers(-50_000, 50_000),
)
def test_grid_index_is_global_index_minus_offset(price: float, offset: int) -> None:
    grid = PriceGrid(GridConfig(), offset)
    assert grid.index(price) == grid.global_index(price) - offset
