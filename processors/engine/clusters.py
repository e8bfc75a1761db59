"""Clusters: contiguous buckets of unusual density, scored against nearby density.

For one side, take the buckets between price and ±``window_pct`` (below price for longs, above
for shorts), smooth them with a short boxcar, and z-score every bucket against the mean and
standard deviation of that window. A cluster is a run of buckets with z ≥ the dim threshold;
its intensity comes from its peak z (dim/medium/bright) and it must hold at least
``min_share`` of the window's notional and ``min_usd``.
"""

from __future__ import annotations

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
    total = float(window.sum())
    if b - a < 3 or total <= 0:
        return []
    k = max(1, cfg.smooth_buckets)
    smooth = np.convolve(window, np.ones(k) / k, mode="same")
    std = float(smooth.std())
    if std <= 0:
        return []
    z = (smooth - smooth.mean()) / std
    out = []
    for lo, hi in runs(z >= floor_z):
        notional = float(window[lo : hi + 1].sum())
        if notional >= max(cfg.min_share * total, cfg.min_usd):
            peak = float(z[lo : hi + 1].max())
            out.append(RawCluster(side, a + lo + grid.offset, a + hi + grid.offset, notional, peak))
    return out


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) pairs of the runs of True."""
    if not mask.any():
        return []
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def tier_for(z: float, current: Intensity | None, cfg: ClusterConfig) -> Intensity | None:
    """Intensity with hysteresis: up as soon as z reaches a tier, down only once z falls
    ``hysteresis_z`` below the current tier's threshold."""
    up = None
    for tier in TIERS:
        if z >= cfg.tier_threshold(tier):
            up = tier
    if current is None or (up is not None and TIERS.index(up) > TIERS.index(current)):
        return up
    level: Intensity | None = current
    while level is not None and z < cfg.tier_threshold(level) - cfg.hysteresis_z:
        i = TIERS.index(level)
        level = TIERS[i - 1] if i > 0 else None
    return level
