"""Sweeps: the mark price crosses a cluster.

A long cluster sits below price and is swept going down: price enters it at its top (near) edge,
consuming levels, and the sweep happens when price trades below its bottom (far) edge; shorts
mirror this above price. A sweep is confirmed when realized liquidations of that side were
observed inside the band (± one bucket) within ``confirm_window_s`` (T) of the crossing,
totalling at least ``max(confirm_min_usd, confirm_share × estimated notional consumed)``;
or, since a sampled feed hides most of the notional, sampled liquidations in the band in at
least ``sampled_busy_seconds`` distinct seconds within T of the crossing. The sweep is
reported as soon as it is confirmed, or unconfirmed once the confirmation window has passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liqwatch.schema import Intensity
from processors.engine.clusters import TIERS
from processors.engine.common import LONG, BoolArray, FloatArray, IntArray
from processors.engine.config import SweepConfig
from processors.engine.estimated import Consumed
from processors.engine.state import LiqChunk, PendingSweep, SweepState, TrackedCluster
from processors.engine.tracker import ClusterTracker


@dataclass(frozen=True)
class SweepResult:
    sweep: PendingSweep
    realized_usd: float
    confirmed: bool
    ts: int


def _bucket_range(tracker: ClusterTracker, low: float, high: float) -> tuple[float, float]:
    """Global bucket indices of the run's extremes (±inf when they say nothing).

    A bucket index is ``floor(log(p) / step)``: its rounding error is ~1e-15 of a bucket, so a
    price two buckets beyond a band's edge index is beyond the edge itself.
    """
    grid = tracker.grid
    low_at = grid.global_index(low) if 0 < low < math.inf else -math.inf
    high_at = grid.global_index(high) if 0 < high < math.inf else math.inf
    return low_at, high_at


def _inside(side: int, prices: FloatArray, lo: float, hi: float) -> BoolArray:
    inside: BoolArray = prices < hi if side == LONG else prices > lo
    return inside


def _crossed(side: int, prices: FloatArray, lo: float, hi: float) -> BoolArray:
    crossed: BoolArray = prices < lo if side == LONG else prices > hi
    return crossed


class SweepDetector:
    def __init__(self, cfg: SweepConfig, bucket_bp: float, state: SweepState | None = None) -> None:
        self.cfg = cfg
        self.tol = bucket_bp / 10_000.0
        self.window_ms = cfg.confirm_window_s * 1000
        self.state = state or SweepState()

    # --- price ------------------------------------------------------------------------------

    def credit(self, tracker: ClusterTracker, consumed: Consumed) -> None:
        """Adds the estimated USD that price consumed to the clusters it came from."""
        if not (consumed.long_idx.size or consumed.short_idx.size):
            return  # the usual case: nothing consumed
        for c in tracker.clusters:
            idx, usd = (
                (consumed.long_idx, consumed.long_usd)
                if c.side == LONG
                else (consumed.short_idx, consumed.short_usd)
            )
            if idx.size:
                inside = (idx >= c.lo) & (idx <= c.hi)
                c.consumed += float(usd[inside].sum())

    def on_prices(
        self,
        ts: IntArray,
        prices: FloatArray,
        tracker: ClusterTracker,
        low: float | None = None,
        high: float | None = None,
    ) -> tuple[list[SweepResult], list[str]]:
        """Checks a time-sorted run of mark prices; returns finished sweeps, swept cluster ids.

        ``low``/``high``: the run's extremes when the caller has them already.
        """
        swept: list[str] = []
        before = self.state.last_price or float(prices[0])
        low = float(prices.min()) if low is None else low
        high = float(prices.max()) if high is None else high
        if math.isnan(low) or math.isnan(high):
            low, high = -math.inf, math.inf  # NaN prices: the extremes prove nothing
        last = float(prices[-1])
        low_at, high_at = _bucket_range(tracker, low, high)
        for c in list(tracker.clusters):
            if (c.hi + 2 <= low_at) if c.side == LONG else (c.lo - 2 >= high_at):
                # price stayed over a bucket away from the band (no edge needed): not inside
                c.touched_at = 0
                continue
            lo, hi = tracker.band(c)
            # whether any price is inside / through the band, from the run's extremes: the
            # arrays are only built for a cluster that price reached
            if c.side == LONG:
                reached, through, ends_inside = low < hi, low < lo, last < hi
            else:
                reached, through, ends_inside = high > lo, high > hi, last > lo
            inside = _inside(c.side, prices, lo, hi) if reached else None
            j = int(np.argmax(inside)) if inside is not None and inside.any() else -1
            first_inside = int(ts[j]) if j >= 0 else 0
            if j >= 0 and not c.touched_at:
                c.price_before = float(prices[j - 1]) if j > 0 else before
            crossed = _crossed(c.side, prices, lo, hi) if through else None
            if crossed is not None and crossed.any():
                # consumed either way; only clusters intense enough are reported as sweeps
                if self._sweepable(c):
                    k = int(np.argmax(crossed))
                    self._pend(
                        c,
                        tracker,
                        touched=c.touched_at or first_inside,
                        crossed=int(ts[k]),
                        before=c.price_before or before,
                        after=float(prices[k]),
                    )
                    swept.append(c.cid)
                tracker.remove(c.cid)
                continue
            c.ever_touched = c.ever_touched or first_inside > 0
            c.touched_at = (c.touched_at or first_inside) if ends_inside else 0
        self.state.last_price = last
        return self._resolve(int(ts[-1]), final=False), swept

    def _sweepable(self, c: TrackedCluster) -> bool:
        return c.tier is not None and TIERS.index(c.tier) >= TIERS.index(self.cfg.min_tier)

    def _pend(
        self,
        c: TrackedCluster,
        tracker: ClusterTracker,
        *,
        touched: int,
        crossed: int,
        before: float,
        after: float,
    ) -> None:
        lo, hi = tracker.band(c)
        pending = PendingSweep(
            cid=c.cid,
            side=c.side,
            band_lo=lo,
            band_hi=hi,
            tier=c.tier or Intensity.DIM,
            zscore=c.peak_z,
            touched_at=touched,
            crossed_at=crossed,
            estimated_usd=c.consumed,
            price_before=before,
            price_after=after,
        )
        for chunk in self.state.recent:
            self._count(pending, chunk)
        self.state.pending.append(pending)

    # --- realized confirmation --------------------------------------------------------------

    def on_liquidations(
        self, ts: IntArray, price: FloatArray, side: IntArray, usd: FloatArray, sampled: BoolArray
    ) -> list[SweepResult]:
        s = self.state
        chunk = LiqChunk(ts=ts, price=price, side=side, usd=usd, sampled=sampled)
        s.recent.append(chunk)
        now = int(ts[-1])
        while s.recent and int(s.recent[0].ts[-1]) < now - 2 * self.window_ms:
            s.recent.pop(0)
        for p in s.pending:
            self._count(p, chunk)
        return self._resolve(now, final=False) if s.pending else []

    def tick(self, now: int) -> list[SweepResult]:
        return self._resolve(now, final=True) if self.state.pending else []

    def _count(self, p: PendingSweep, c: LiqChunk) -> None:
        """Adds a chunk's liquidations of the sweep's side, in its band, within ±T."""
        mask = (
            (c.side == p.side)
            & (np.abs(c.ts - p.crossed_at) <= self.window_ms)
            & (c.price >= p.band_lo * (1 - self.tol))
            & (c.price <= p.band_hi * (1 + self.tol))
        )
        if not mask.any():
            return
        p.realized_usd += float(c.usd[mask].sum())
        busy = np.unique(c.ts[mask & c.sampled.astype(bool)] // 1000).tolist()
        p.busy_seconds = sorted(set(p.busy_seconds) | set(busy))

    def _resolve(self, now: int, final: bool) -> list[SweepResult]:
        out: list[SweepResult] = []
        still: list[PendingSweep] = []
        for p in self.state.pending:
            if self._confirmed(p):
                out.append(SweepResult(p, p.realized_usd, True, max(now, p.crossed_at)))
            elif final and now >= p.crossed_at + self.window_ms:
                out.append(SweepResult(p, p.realized_usd, False, now))
            else:
                still.append(p)
        self.state.pending = still
        return out

    def _confirmed(self, p: PendingSweep) -> bool:
        needed = max(self.cfg.confirm_min_usd, self.cfg.confirm_share * p.estimated_usd)
        # A sampled feed (one liquidation per symbol per second) that was busy in the band
        # hides most of the notional: enough busy seconds confirm on their own.
        return p.realized_usd >= needed or len(p.busy_seconds) >= self.cfg.sampled_busy_seconds
