"""A log-spaced price grid that follows the price.

Bucket ``i`` of the grid covers ``[origin·r^i, origin·r^(i+1))`` with ``r = 1 + bucket_bp/10⁴``.
The origin is itself a power of ``r`` (a global bucket index), so the same price always lands in
the same bucket whatever the grid's position, and replays are exact. When price drifts into the
outer quarter of the grid, the grid moves and every layer shifts its arrays with it.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from processors.engine.config import GridConfig

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class PriceGrid:
    def __init__(self, cfg: GridConfig, offset: int | None = None) -> None:
        self.bucket_bp = cfg.bucket_bp
        self.step = math.log1p(cfg.bucket_bp / 10_000.0)
        self.size = 2 * math.ceil(cfg.span_log / self.step)
        self.offset = offset if offset is not None else 0  # global index of bucket 0
        self.placed = offset is not None

    @property
    def origin(self) -> float:
        return math.exp(self.offset * self.step)

    def global_index(self, price: float) -> int:
        return math.floor(math.log(price) / self.step)

    def index(self, price: float) -> int:
        # global_index inlined: several calls per asset per second
        return math.floor(math.log(price) / self.step) - self.offset

    def indices(self, prices: FloatArray) -> IntArray:
        return np.floor(np.log(prices) / self.step).astype(np.int64) - self.offset

    def lower_edge(self, i: int) -> float:
        return math.exp((self.offset + i) * self.step)

    def upper_edge(self, i: int) -> float:
        return math.exp((self.offset + i + 1) * self.step)

    def edges(self) -> FloatArray:
        """Lower edges of every bucket."""
        return np.exp((self.offset + np.arange(self.size, dtype=np.float64)) * self.step)

    def centre_on(self, price: float) -> int:
        """Moves the grid when price leaves its middle half; returns the shift in buckets.

        The caller shifts every array by the returned amount (``shift_arrays``).
        """
        target = self.global_index(price) - self.size // 2
        if not self.placed:
            self.offset = target
            self.placed = True
            return 0
        local = self.index(price)
        if self.size // 4 <= local < 3 * self.size // 4:
            return 0
        delta = target - self.offset
        self.offset = target
        return delta

    def span_indices(self, price: float, pct: float) -> tuple[int, int]:
        """Bucket range [lo, hi) covering price × (1 ± pct %), clipped to the grid."""
        lo = self.index(price * (1 - pct / 100.0))
        hi = self.index(price * (1 + pct / 100.0)) + 1
        return max(lo, 0), min(hi, self.size)


def shift_arrays(delta: int, *arrays: FloatArray) -> None:
    """Moves array contents ``delta`` buckets down the last axis (the grid moved up by delta).

    Mass that falls off the grid is dropped: it is more than ``span_log`` away from price.
    """
    for arr in arrays:
        if delta >= arr.shape[-1] or -delta >= arr.shape[-1]:
            arr[...] = 0.0
        elif delta > 0:
            arr[..., :-delta] = arr[..., delta:]
            arr[..., -delta:] = 0.0
        elif delta < 0:
            arr[..., -delta:] = arr[..., :delta].copy()
            arr[..., :-delta] = 0.0
