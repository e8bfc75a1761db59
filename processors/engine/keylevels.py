"""Key levels: users list prices per asset; alert when liquidations spike around one.

Activity at a level is the realized 1 m decayed notional (both sides) in the buckets within
±``band_pct`` of it. A level alerts when activity reaches ``min_usd`` and re-arms once activity
has fallen below ``rearm_ratio`` × ``min_usd`` (hysteresis).
"""

from __future__ import annotations

from dataclasses import dataclass

from processors.engine.config import KeyLevelConfig
from processors.engine.grid import PriceGrid
from processors.engine.realized import RealizedLayer
from processors.engine.state import KeyLevelState


@dataclass(frozen=True)
class KeyLevelHit:
    level: float
    band_lo: float
    band_hi: float
    long_usd: float
    short_usd: float


class KeyLevelWatch:
    def __init__(self, cfg: KeyLevelConfig, state: KeyLevelState | None = None) -> None:
        self.cfg = cfg
        self.state = state or KeyLevelState(armed=[True] * len(cfg.levels))
        if len(self.state.armed) != len(cfg.levels):  # levels changed in settings
            self.state.armed = [True] * len(cfg.levels)

    def check(self, grid: PriceGrid, realized: RealizedLayer) -> list[KeyLevelHit]:
        hits: list[KeyLevelHit] = []
        for i, level in enumerate(self.cfg.levels):
            lo_p = level * (1 - self.cfg.band_pct / 100.0)
            hi_p = level * (1 + self.cfg.band_pct / 100.0)
            lo, hi = grid.index(lo_p), grid.index(hi_p) + 1
            long_usd = realized.band_sum(0, 0, lo, hi)
            short_usd = realized.band_sum(0, 1, lo, hi)
            activity = long_usd + short_usd
            if self.state.armed[i] and activity >= self.cfg.min_usd:
                self.state.armed[i] = False
                hits.append(KeyLevelHit(level, lo_p, hi_p, long_usd, short_usd))
            elif activity < self.cfg.rearm_ratio * self.cfg.min_usd:
                self.state.armed[i] = True
        return hits
