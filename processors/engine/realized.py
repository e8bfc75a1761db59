"""Realized layer: liquidation notional (USD) per price bucket and side.

Three exponentially decayed sums (time constants 1 m, 5 m, 1 h: a decayed sum with time constant
τ weighs the recent past like a sliding window of length τ, without storing events) plus exact
totals for the current tumbling window, which go to storage as heatmap snapshots.
"""

from __future__ import annotations

import numpy as np

from processors.engine.common import FloatArray, IntArray
from processors.engine.config import RealizedConfig
from processors.engine.state import RealizedState

# Values below this (USD) are flushed to zero so arrays stay sparse and snapshots small.
FLUSH_USD = 1e-3
MAX_CACHED_STEPS = 64


class RealizedLayer:
    def __init__(self, cfg: RealizedConfig, size: int, state: RealizedState | None = None) -> None:
        self.tau_ms = np.array([t * 1000.0 for t in cfg.timeframes_s])
        self.size = size
        n_tf = len(self.tau_ms)
        self._tau_column = self.tau_ms[:, None]
        self._tf_rows = np.arange(n_tf)[:, None]  # a timeframe's offset unit in flat indices
        self._factors: dict[int, FloatArray] = {}  # decay factors by step (ticks repeat one)
        self.state = state or RealizedState(
            decayed=np.zeros((len(self.tau_ms), 2, size)),
            totals=np.zeros((len(self.tau_ms), 2)),
            tumbling=np.zeros((2, size)),
            tumbling_totals=np.zeros(2),
            window_start=0,
            decayed_at=0,
        )
        # buckets [lo, hi) hold every non-zero decayed cell: decay multiplies only those
        # (a zero cell stays zero), which on a day of trading is a small part of the grid
        self._lo, self._hi = 0, 0
        self._find_extent()

    def _find_extent(self) -> None:
        used = np.flatnonzero(self.state.decayed.any(axis=(0, 1)))
        self._lo, self._hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)

    def decay_to(self, now: int) -> None:
        s = self.state
        dt = now - s.decayed_at
        if dt <= 0:
            return
        factors = self._factors.get(dt)
        if factors is None:
            if len(self._factors) >= MAX_CACHED_STEPS:
                self._factors.clear()
            factors = self._factors[dt] = np.exp(-dt / self.tau_ms)
        if self._hi > self._lo:
            s.decayed[:, :, self._lo : self._hi] *= factors[:, None, None]
        s.totals *= factors[:, None]
        s.decayed_at = now

    def flush_small(self) -> None:
        self.state.decayed[self.state.decayed < FLUSH_USD] = 0.0
        self._find_extent()

    def add(self, ts: IntArray, idx: IntArray, side: IntArray, notional: FloatArray) -> None:
        """Adds liquidations; events older than the layer's clock are weighed by their age."""
        s = self.state
        self.decay_to(int(ts.max()))
        age = (s.decayed_at - ts).astype(np.float64)
        weights = notional[None, :] * np.exp(-age[None, :] / self._tau_column)
        # one bincount for every (timeframe, side): each cell sums its rows in row order
        by_tf = (side[None, :] + 2 * self._tf_rows).ravel()
        s.totals += np.bincount(by_tf, weights=weights.ravel(), minlength=s.totals.size).reshape(
            -1, 2
        )
        s.tumbling_totals += np.bincount(side, weights=notional, minlength=2)
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= self.size:  # some rows fall off the grid: the rest counts
            on_grid = (idx >= 0) & (idx < self.size)
            if not on_grid.any():
                return
            idx, side, notional = idx[on_grid], side[on_grid], notional[on_grid]
            weights = weights[:, on_grid]
            lo, hi = int(idx.min()), int(idx.max())
        self._add_cells(lo, hi + 1 - lo, idx, side, notional, weights)

    def _add_cells(
        self,
        lo: int,
        span: int,
        idx: IntArray,
        side: IntArray,
        notional: FloatArray,
        weights: FloatArray,
    ) -> None:
        """Adds on-grid rows to the buckets [lo, lo + span) they lie in; a cell's rows are
        summed in row order first, as one bincount over the whole grid does."""
        s = self.state
        cell = (idx - lo) * 2 + side  # (bucket, side), bucket-major
        n_tf = len(self.tau_ms)
        by_tf = (cell[None, :] + 2 * span * self._tf_rows).ravel()
        sums = np.bincount(by_tf, weights=weights.ravel(), minlength=2 * span * n_tf)
        s.decayed[:, :, lo : lo + span] += sums.reshape(n_tf, span, 2).transpose(0, 2, 1)
        if self._hi > self._lo:
            self._lo, self._hi = min(self._lo, lo), max(self._hi, lo + span)
        else:
            self._lo, self._hi = lo, lo + span
        exact = np.bincount(cell, weights=notional, minlength=2 * span)
        s.tumbling[:, lo : lo + span] += exact.reshape(span, 2).T

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
        """The (…, bucket) arrays, for the caller to shift with the grid: the decayed
        cells may then be anywhere until the next flush finds them again."""
        self._lo, self._hi = 0, self.size
        return [self.state.decayed, self.state.tumbling]
