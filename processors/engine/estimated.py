"""Estimated layer: where leveraged positions would be forced out.

When an instrument's open interest rises by ΔOI (USD) at mark price P, the new positions are split
long/short and spread over leverage tiers; a position opened at P with leverage L is liquidated
at ``P·(1 − 1/L + mmr)`` (long) or ``P·(1 + 1/L − mmr)`` (short). When open interest falls, every
level shrinks by the fraction of the asset's open interest that closed. Levels the mark price
crosses are consumed (those positions are gone), and all levels fade with a half-life because
voluntary closes are invisible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec
import numpy as np

from processors.engine.common import LONG, SHORT, FloatArray, IntArray
from processors.engine.config import ModelConfig
from processors.engine.grid import PriceGrid

FLUSH_USD = 1e-3


class InstrumentOI(msgspec.Struct, kw_only=True):
    venue: str
    instrument: str
    inverse: bool
    oi_base: float
    oi_usd: float
    price: float  # price at the previous observation, for the direction split
    ts: int


class EstimatedState(msgspec.Struct, kw_only=True):
    levels: np.ndarray  # (side, bucket) USD
    decayed_at: int
    instruments: dict[str, InstrumentOI]
    added_usd: float = 0.0
    removed_usd: float = 0.0
    consumed_usd: float = 0.0
    off_grid_usd: float = 0.0


@dataclass(frozen=True)
class Consumed:
    """Levels removed by a price move: global bucket indices and USD, per side."""

    long_idx: IntArray
    long_usd: FloatArray
    short_idx: IntArray
    short_usd: FloatArray


@dataclass(frozen=True)
class OIChange:
    """One open-interest observation reduced to what the level model needs."""

    ts: int
    price: float
    delta_usd: float  # > 0 opened, < 0 closed
    long_share: float
    total_before_usd: float


def is_inverse(instrument: str) -> bool:
    """Normalized names end in -INVERSE for coin-margined contracts (BTC-USD-INVERSE)."""
    return instrument.upper().endswith("INVERSE")


def liquidation_prices(cfg: ModelConfig, price: float) -> tuple[list[float], list[float]]:
    """(long, short) liquidation prices of positions opened at ``price``, one per tier."""
    longs = [price * (1 - 1 / lev + cfg.mmr) for lev, _ in cfg.tiers]
    shorts = [price * (1 + 1 / lev - cfg.mmr) for lev, _ in cfg.tiers]
    return longs, shorts


def long_share(cfg: ModelConfig, ret: float) -> float:
    """Share of new open interest assumed to be leveraged longs, from the price move."""
    if cfg.split == "even":
        return 0.5
    full = cfg.direction_full_bp / 10_000.0
    return 0.5 + cfg.direction_bias * max(-1.0, min(1.0, ret / full))


class EstimatedLayer:
    def __init__(
        self, cfg: ModelConfig, grid: PriceGrid, state: EstimatedState | None = None
    ) -> None:
        self.cfg = cfg
        self.grid = grid
        self.half_life_ms = cfg.half_life_h * 3_600_000.0
        lev = np.array([t[0] for t in cfg.tiers])
        self.weights = np.array([t[1] for t in cfg.tiers])
        self.long_mult = 1 - 1 / lev + cfg.mmr
        self.short_mult = 1 + 1 / lev - cfg.mmr
        self.state = state or EstimatedState(
            levels=np.zeros((2, grid.size)), decayed_at=0, instruments={}
        )

    # --- open interest ----------------------------------------------------------------------

    def total_oi_usd(self) -> float:
        return sum(i.oi_usd for i in self.state.instruments.values())

    def observe(
        self,
        venue: str,
        instrument: str,
        oi_base: float,
        oi_usd: float,
        price: float,
        ts: int,
        forced_usd: float = 0.0,
    ) -> OIChange | None:
        """Records one OI observation; returns the change since the previous one, if any.

        ``forced_usd`` is the liquidation notional seen on this instrument since the previous
        observation: those closes were already consumed by price, so they are added back and
        only voluntary opens and closes move the levels.
        """
        key = f"{venue}:{instrument}"
        prev = self.state.instruments.get(key)
        inverse = is_inverse(instrument)
        if prev is None:
            self.state.instruments[key] = InstrumentOI(
                venue=venue,
                instrument=instrument,
                inverse=inverse,
                oi_base=oi_base,
                oi_usd=oi_usd,
                price=price,
                ts=ts,
            )
            return None
        if ts < prev.ts:
            return None  # an older observation than the one we hold says nothing new
        # Linear OI in USD also moves with price; only the change in contracts is new positions.
        delta = oi_usd - prev.oi_usd if inverse else (oi_base - prev.oi_base) * price
        delta += forced_usd
        total_before = self.total_oi_usd()
        change = OIChange(
            ts=ts,
            price=price,
            delta_usd=delta,
            long_share=long_share(self.cfg, price / prev.price - 1.0),
            total_before_usd=total_before,
        )
        prev.oi_base, prev.oi_usd, prev.price, prev.ts = oi_base, oi_usd, price, ts
        return change

    def apply(self, changes: list[OIChange]) -> None:
        """Adds and removes levels for a chunk of changes, in order, vectorized.

        A removal scales everything present before it, so each addition is weighted by the
        product of the removal factors that come after it.
        """
        if not changes:
            return
        now = max(c.ts for c in changes)
        self.decay_to(now)
        factors = np.array(self._removal_factors(changes))
        after = np.append(np.cumprod(factors[::-1])[::-1][1:], 1.0)
        total_factor = float(np.prod(factors))
        if total_factor != 1.0:
            self.state.removed_usd += (1 - total_factor) * float(self.state.levels.sum())
            self.state.levels *= total_factor
        adds = [(i, c) for i, c in enumerate(changes) if c.delta_usd > 0]
        if adds:
            self._add_levels(adds, after, now)

    def _removal_factors(self, changes: list[OIChange]) -> list[float]:
        """Per change, the factor every level keeps (1 for rises).

        ``removal = "layer"``: a fall of ΔOI removes ΔOI from the layer (the positions we saw
        open); ``"open_interest"``: the share ΔOI / total OI of every level.
        """
        total = float(self.state.levels.sum())
        factors: list[float] = []
        for c in changes:
            if c.delta_usd >= 0:
                total += c.delta_usd
                factors.append(1.0)
                continue
            base = total if self.cfg.removal == "layer" else c.total_before_usd
            keep = max(0.0, 1.0 + c.delta_usd / base) if base > 0 else 1.0
            total *= keep
            factors.append(keep)
        return factors

    def _add_levels(self, adds: list[tuple[int, OIChange]], after: FloatArray, now: int) -> None:
        n = len(adds)
        price = np.fromiter((c.price for _, c in adds), float, n)
        usd = np.fromiter((c.delta_usd for _, c in adds), float, n)
        share = np.fromiter((c.long_share for _, c in adds), float, n)
        age = np.fromiter((now - c.ts for _, c in adds), float, n)
        keep = after[[i for i, _ in adds]] * np.exp2(-age / self.half_life_ms)
        usd = usd * keep
        self.state.added_usd += float(usd.sum())
        long_usd = (usd * share)[:, None] * self.weights[None, :]
        short_usd = (usd * (1 - share))[:, None] * self.weights[None, :]
        self._deposit(LONG, price[:, None] * self.long_mult[None, :], long_usd)
        self._deposit(SHORT, price[:, None] * self.short_mult[None, :], short_usd)

    def _deposit(self, side: int, prices: FloatArray, usd: FloatArray) -> None:
        idx = self.grid.indices(prices.reshape(-1))
        amounts = usd.reshape(-1)
        on_grid = (idx >= 0) & (idx < self.grid.size)
        self.state.off_grid_usd += float(amounts[~on_grid].sum())
        np.add.at(self.state.levels[side], idx[on_grid], amounts[on_grid])

    # --- price ------------------------------------------------------------------------------

    def consume(self, low: float, high: float) -> Consumed:
        """Removes the levels that the price path [low, high] crossed.

        A long level is consumed once price trades in or below its bucket, a short level once
        price trades in or above its bucket (those positions have been liquidated).
        """
        levels = self.state.levels
        lo_i = min(max(self.grid.index(low), 0), self.grid.size)
        hi_i = min(max(self.grid.index(high) + 1, 0), self.grid.size)
        long_idx = np.flatnonzero(levels[LONG, lo_i:]) + lo_i
        short_idx = np.flatnonzero(levels[SHORT, :hi_i])
        out = Consumed(
            long_idx=long_idx + self.grid.offset,
            long_usd=levels[LONG, long_idx].copy(),
            short_idx=short_idx + self.grid.offset,
            short_usd=levels[SHORT, short_idx].copy(),
        )
        levels[LONG, long_idx] = 0.0
        levels[SHORT, short_idx] = 0.0
        self.state.consumed_usd += float(out.long_usd.sum() + out.short_usd.sum())
        return out

    def decay_to(self, now: int) -> None:
        dt = now - self.state.decayed_at
        if dt <= 0:
            return
        if self.state.decayed_at > 0:
            self.state.levels *= math.exp2(-dt / self.half_life_ms)
        self.state.decayed_at = now

    def flush_small(self) -> None:
        self.state.levels[self.state.levels < FLUSH_USD] = 0.0

    def arrays(self) -> list[FloatArray]:
        return [self.state.levels]
