"""Liquidation pressure per timeframe: which side is being forced out, relative to normal.

For each timeframe (1 m, 5 m, 1 h) ``x = short_liq − long_liq`` from the realized layer's decayed
sums; ``pressure = x / max(rolling std of x, min_std_usd)``, with x sampled every timeframe / 4
and the std taken over the last ``history`` samples. Positive pressure: shorts are being
liquidated (forced buying, upward); negative: longs (forced selling). A timeframe turns
directional at |pressure| ≥ ``enter`` and neutral again below ``exit``; alerts fire on the
transition to directional (or a flip), never while it stays extreme. Agreement is the share of
timeframes whose pressure has the same sign; ``conflicted`` when directional timeframes disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from processors.engine.config import PressureConfig
from processors.engine.state import PressureState

TIMEFRAME_NAMES = ("1m", "5m", "1h")


@dataclass(frozen=True)
class PressureShift:
    timeframe: int
    direction: int  # +1 shorts liquidated (upward), -1 longs liquidated (downward)
    pressure: float
    agreement: float
    conflicted: bool
    x_usd: float


class PressureTracker:
    def __init__(
        self, cfg: PressureConfig, timeframes_s: tuple[int, ...], state: PressureState | None
    ) -> None:
        self.cfg = cfg
        self.cadence_ms = [t * 1000 // 4 for t in timeframes_s]
        self._gcd_ms = math.gcd(*self.cadence_ms) or 1
        n = len(timeframes_s)
        self.state = state or PressureState(
            samples=np.zeros((n, cfg.history)),
            count=np.zeros(n, dtype=np.int64),
            value=np.zeros(n),
        )

    def due(self, now: int) -> bool:
        """Whether ``tick(now)`` samples any timeframe (most seconds it samples none)."""
        # every cadence is a multiple of their gcd: one modulo rejects most seconds
        return now % self._gcd_ms == 0 and any(now % c == 0 for c in self.cadence_ms)

    def tick(self, now: int, x_by_tf: list[float]) -> list[PressureShift]:
        """Samples every timeframe whose cadence divides ``now``; returns transitions."""
        shifts: list[PressureShift] = []
        for tf, cadence in enumerate(self.cadence_ms):
            if now % cadence == 0:
                shift = self._sample(tf, x_by_tf[tf])
                shifts += [shift] if shift else []
        return shifts

    def _sample(self, tf: int, x: float) -> PressureShift | None:
        s, cfg = self.state, self.cfg
        s.samples[tf, int(s.count[tf]) % cfg.history] = x
        s.count[tf] += 1
        n = min(int(s.count[tf]), cfg.history)
        if n < cfg.min_samples:
            return None
        std = max(float(s.samples[tf, :n].std()), cfg.min_std_usd)
        p = x / std
        s.value[tf] = p
        before = s.regime[tf]
        direction = int(np.sign(p)) if abs(p) >= cfg.enter else 0
        if direction == 0:
            s.regime[tf] = 0 if abs(p) < cfg.exit else before
            return None
        s.regime[tf] = direction
        if direction == before:
            return None
        agreement, conflicted = self.agreement(direction)
        return PressureShift(tf, direction, p, agreement, conflicted, x)

    def agreement(self, direction: int) -> tuple[float, bool]:
        signs = np.sign(self.state.value)
        share = float(np.mean(signs == direction))
        directional = {r for r in self.state.regime if r != 0}
        return share, len(directional) > 1
