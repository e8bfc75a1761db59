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
from collections.abc import Callable
from typing import Any

import numpy as np

from liqwatch.schema import Intensity
from processors.engine.common import LONG, FloatArray
from processors.engine.config import ClusterConfig
from processors.engine.grid import PriceGrid
from processors.engine.state import RawCluster
from processors.engine.sums import np_sum, run_sum

TIERS = (Intensity.DIM, Intensity.MEDIUM, Intensity.BRIGHT)
RANK = {tier: i for i, tier in enumerate(TIERS)}  # == TIERS.index(tier)


def _correlate_kernel() -> Callable[..., Any]:
    """The kernel np.convolve ends in, minus its wrapper; private, so a moved one falls back.
    (A function, not a try/except at module level: mypyc cannot compile a rebound import.)"""
    try:
        from numpy._core.multiarray import correlate  # noqa: PLC0415
    except ImportError:  # pragma: no cover - another numpy than the pinned one
        return np.correlate
    kernel: Callable[..., Any] = correlate
    return kernel


_correlate = _correlate_kernel()


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
    total = float(np_sum(window))
    if b - a < 3 or total <= 0:
        return []
    smooth = _smooth(window, max(1, cfg.smooth_buckets))
    # ndarray.mean/std spelled out with the same reductions (bit-identical), without their
    # per-call wrappers: this runs for both sides of every asset every second
    deviation = smooth - float(np_sum(smooth)) / smooth.size
    std = math.sqrt(float(np_sum(deviation * deviation)) / smooth.size)
    if std <= 0:
        return []
    z = (deviation / std).tolist()
    runs = runs_at_least(z, floor_z)
    if not runs:
        return []
    values = window.tolist()
    floor = max(cfg.min_share * total, cfg.min_usd)
    base = a + grid.offset
    out = []
    for lo, hi in runs:
        notional = run_sum(window, values, lo, hi + 1)
        if notional >= floor:
            out.append(RawCluster(side, base + lo, base + hi, notional, max(z[lo : hi + 1])))
    return out


@functools.lru_cache(maxsize=8)
def _kernel(k: int) -> FloatArray:
    kernel: FloatArray = np.ones(k) / k
    kernel.flags.writeable = False
    return kernel


def _smooth(window: FloatArray, k: int) -> FloatArray:
    """np.convolve(window, boxcar, "same"), calling the kernel np.convolve ends in directly:
    a boxcar is its own reverse, and np.convolve only swaps the arguments (so, guarded here)
    when the kernel is longer than the window."""
    kernel = _kernel(k)
    if k > window.size:
        return np.convolve(window, kernel, mode="same")
    smooth: FloatArray = _correlate(window, kernel, "same")
    return smooth


def runs_at_least(z: list[float], floor: float) -> list[tuple[int, int]]:
    """Inclusive (start, end) pairs of the runs of consecutive values ≥ ``floor``."""
    out: list[tuple[int, int]] = []
    start = -1
    for i, v in enumerate(z):
        if v >= floor:
            if start < 0:
                start = i
        elif start >= 0:
            out.append((start, i - 1))
            start = -1
    if start >= 0:
        out.append((start, len(z) - 1))
    return out


def tier_for(z: float, current: Intensity | None, cfg: ClusterConfig) -> Intensity | None:
    """Intensity with hysteresis: up as soon as z reaches a tier, down only once z falls
    ``hysteresis_z`` below the current tier's threshold."""
    thresholds = (cfg.z_dim, cfg.z_medium, cfg.z_bright)  # == cfg.tier_threshold(TIERS[i])
    # the highest tier whose threshold z reaches (thresholds need not be ascending)
    rank = 2 if z >= thresholds[2] else 1 if z >= thresholds[1] else 0 if z >= thresholds[0] else -1
    if current is None or rank > RANK[current]:
        return TIERS[rank] if rank >= 0 else None
    level = RANK[current]
    while level >= 0 and z < thresholds[level] - cfg.hysteresis_z:
        level -= 1
    return TIERS[level] if level >= 0 else None
