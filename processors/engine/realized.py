"""Realized layer: liquidation notional (USD) per price bucket and side.

Three exponentially decayed sums (time constants 1 m, 5 m, 1 h: a decayed sum with time constant
τ weighs the recent past like a sliding window of length τ, without storing events) plus exact
totals for the current tumbling window, which go to storage as heatmap snapshots.
"""

from __future__ import annotations

import msgspec
import numpy as np

from processors.engine.common import FloatArray, IntArray
from processors.engine.config import RealizedConfig

# Values below this (USD) are flushed to zero so arrays stay sparse and snapshots small.
FLUSH_USD = 1e-3


class RealizedState(msgspec.Struct, kw_only=True):
    decayed: np.ndarray  # (timeframe, side, bucket)
    totals: np.ndarray  # (timeframe, side): decayed sums over all buckets, incl. off-grid
    tumbling: np.ndarray  # (side, bucket), exact, for the window starting at window_start
    tumbling_totals: np.ndarray  # (side,)
    window_start: int
    decayed_at: int


class RealizedLayer:
    def __init__(self, cfg: RealizedConfig, size: int, state: RealizedState | None = None) -> None:
        self.tau_ms = np.array([t * 1000.0 for t in cfg.timeframes_s])
        self.size = size
        self.state = state or RealizedState(
            decayed=np.zeros((len(self.tau_ms), 2, size)),
            totals=np.zeros((len(self.tau_ms), 2)),
            tumbling=np.zeros((2, size)),
            tumbling_totals=np.zeros(2),
            window_start=0,
            decayed_at=0,
        )

    def decay_to(self, now: int) -> None:
        s = self.state
        dt = now - s.decayed_at
        if dt <= 0:
            return
        factors = np.exp(-dt / self.tau_ms)
        s.decayed *= factors[:, None, None]
        s.totals *= factors[:, None]
        s.decayed_at = now

    def flush_small(self) -> None:
        self.state.decayed[self.state.decayed < FLUSH_USD] = 0.0

    def add(self, ts: IntArray, idx: IntArray, side: IntArray, notional: FloatArray) -> None:
        """Adds liquidations; events older than the layer's clock are weighed by their age."""
        s = self.state
        self.decay_to(int(ts.max()))
        age = (s.decayed_at - ts).astype(np.float64)
        weights = notional[None, :] * np.exp(-age[None, :] / self.tau_ms[:, None])
        for tf in range(len(self.tau_ms)):
            s.totals[tf] += np.bincount(side, weights=weights[tf], minlength=2)
        s.tumbling_totals += np.bincount(side, weights=notional, minlength=2)
        on_grid = (idx >= 0) & (idx < self.size)
        flat = side[on_grid] * self.size + idx[on_grid]
        cells = 2 * self.size
        for tf in range(len(self.tau_ms)):
            s.decayed[tf].reshape(-1)[:] += np.bincount(
                flat, weights=weights[tf][on_grid], minlength=cells
            )
        s.tumbling.reshape(-1)[:] += np.bincount(flat, weights=notional[on_grid], minlength=cells)

    def band_sum(self, tf: int, side: int, lo: int, hi: int) -> float:
        lo, hi = max(lo, 0), min(hi, self.size)
        return float(self.state.decayed[tf, side, lo:hi].sum()) if hi > lo else 0.0

    def close_window(self, window_start: int) -> FloatArray:
        """Returns the closed window's totals (side, bucket) and starts a new window."""
        s = self.state
        closed = s.tumbling.copy()
        s.tumbling[...] = 0.0
        s.tumbling_totals[...] = 0.0
        s.window_start = window_start
        return closed

    def arrays(self) -> list[FloatArray]:
        return [self.state.decayed, self.state.tumbling]
