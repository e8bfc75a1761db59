"""Clusters: contiguous buckets of unusual density, scored against nearby density.

For one side, take the buckets between price and ±``window_pct`` (below price for longs, above
for shorts), smooth them with a short boxcar, and z-score every bucket against the mean and
standard deviation of that window. A cluster is a run of buckets with z ≥ the dim threshold;
its intensity comes from its peak z (dim/medium/bright) and it must hold at least
``min_share`` of the window's notional and ``min_usd``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from liqwatch.schema import Intensity
from processors.engine.common import LONG, FloatArray
from processors.engine.config import ClusterConfig
from processors.engine.grid import PriceGrid

TIERS = (Intensity.DIM, Intensity.MEDIUM, Intensity.BRIGHT)


@dataclass(frozen=True)
class RawCluster:
    side: int
    lo: int  # global bucket index, inclusive
    hi: int  # global bucket index, inclusive
    notional: float
    peak_z: float


def side_window(grid: PriceGrid, side: int, price: float, pct: float) -> tuple[int, int]:
    """Local bucket range [a, b) between price and price ∓ pct % on the side's half."""
    here = grid.index(price)
    if side == LONG:
        a, b = grid.index(price * (1 - pct / 100.0)), here + 1
    else:
        a, b = here, grid.index(price * (1 + pct / 100.0)) + 1
    return max(a, 0), min(b, grid.size)


def find_clusters(
    density: FloatArray,
    grid: PriceGrid,
    side: int,
    price: float,
    *,
    cfg: ClusterConfig,
    floor_z: float,
    both_halves: bool = False,
) -> list[RawCluster]:
    """Clusters of one side whose peak z-score is at least ``floor_z``.

    Estimated levels of a side only exist on its half (longs below price); realized
    liquidations can sit on both (``both_halves``), since price may have moved through them.
    """
    if both_halves:
        a, b = grid.span_indices(price, cfg.window_pct)
    else:
        a, b = side_window(grid, side, price, cfg.window_pct)
    window = density[a:b]
    total = float(_sum(window))
    if b - a < 3 or total <= 0:
        return []
    smooth = np.convolve(window, _kernel(max(1, cfg.smooth_buckets)), mode="same")
    # ndarray.mean/std spelled out with the same reductions (bit-identical), without their
    # per-call wrappers: this runs for both sides of every asset every second
    deviation = smooth - float(_sum(smooth)) / smooth.size
    std = math.sqrt(float(_sum(deviation * deviation)) / smooth.size)
    if std <= 0:
        return []
    z_scores = deviation / std
    hot = np.flatnonzero(z_scores >= floor_z).tolist()
    if not hot:
        return []
    z = z_scores.tolist()
    out = []
    for lo, hi in consecutive_runs(hot):
        notional = float(_sum(window[lo : hi + 1]))
        if notional >= max(cfg.min_share * total, cfg.min_usd):
            peak = max(z[lo : hi + 1])
            out.append(RawCluster(side, a + lo + grid.offset, a + hi + grid.offset, notional, peak))
    return out


_sum = np.add.reduce  # the reduction ndarray.sum runs (pairwise), minus its Python wrapper


@functools.lru_cache(maxsize=8)
def _kernel(k: int) -> FloatArray:
    kernel: FloatArray = np.ones(k) / k
    kernel.flags.writeable = False
    return kernel


def consecutive_runs(indices: list[int]) -> list[tuple[int, int]]:
    """Inclusive (start, end) pairs of the runs of consecutive ascending indices."""
    out: list[tuple[int, int]] = []
    start = prev = indices[0] if indices else 0
    for i in indices[1:]:
        if i != prev + 1:
            out.append((start, prev))
            start = i
        prev = i
    if indices:
        out.append((start, prev))
    return out


def tier_for(z: float, current: Intensity | None, cfg: ClusterConfig) -> Intensity | None:
    """Intensity with hysteresis: up as soon as z reaches a tier, down only once z falls
    ``hysteresis_z`` below the current tier's threshold."""
    thresholds = (cfg.z_dim, cfg.z_medium, cfg.z_bright)  # == cfg.tier_threshold(TIERS[i])
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
