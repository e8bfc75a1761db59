"""The simulated market's open positions: who gets liquidated when the price moves.

Long positions sit in a max-heap by liquidation price and shorts in a min-heap, so each price
step pops exactly the positions it crosses. Voluntary closes mark positions dead (lazy
deletion). A per-side histogram of open notional on a log price grid is kept up to date for
the band (cluster) ground truth.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from liqwatch.schema import Side


class LogGrid:
    """Log-spaced price buckets: bucket i covers [origin·r^i, origin·r^(i+1)), r = 1 + bp/10⁴."""

    def __init__(self, origin: float, bucket_bp: float, span: float = 4.0) -> None:
        self.origin = origin
        self.log_step = math.log1p(bucket_bp / 10_000)
        self.offset = math.ceil(math.log(span) / self.log_step)
        self.size = 2 * self.offset + 1

    def index(self, price: float) -> int:
        raw = math.floor(math.log(price / self.origin) / self.log_step) + self.offset
        return min(max(raw, 0), self.size - 1)

    def lower(self, index: int) -> float:
        return self.origin * math.exp((index - self.offset) * self.log_step)

    def upper(self, index: int) -> float:
        return self.lower(index + 1)


def liquidation_price(side: Side, entry: float, leverage: int, mmr: float) -> float:
    if side is Side.LONG:
        return entry * (1 - 1 / leverage + mmr)
    return entry * (1 + 1 / leverage - mmr)


def bankruptcy_price(side: Side, entry: float, leverage: int) -> float:
    if side is Side.LONG:
        return entry * (1 - 1 / leverage)
    return entry * (1 + 1 / leverage)


@dataclass(frozen=True)
class Position:
    pid: int
    side: Side
    venue: int  # index into the scenario's venues
    qty: float  # base units
    entry: float
    leverage: int
    liq_price: float
    bankruptcy: float
    bucket: int
    crowd: str | None


@dataclass
class PositionBook:
    grid: LogGrid
    n_venues: int
    positions: list[Position] = field(default_factory=list)
    alive: list[bool] = field(default_factory=list)
    _longs: list[tuple[float, int]] = field(default_factory=list)
    _shorts: list[tuple[float, int]] = field(default_factory=list)
    density_long: np.ndarray = field(init=False)
    density_short: np.ndarray = field(init=False)
    open_qty: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self.density_long = np.zeros(self.grid.size)
        self.density_short = np.zeros(self.grid.size)
        self.open_qty = [0.0] * self.n_venues

    def open(self, position: Position) -> None:
        self.positions.append(position)
        self.alive.append(True)
        if position.side is Side.LONG:
            heapq.heappush(self._longs, (-position.liq_price, position.pid))
        else:
            heapq.heappush(self._shorts, (position.liq_price, position.pid))
        self._account(position, +1.0)

    def close(self, pid: int) -> bool:
        """Voluntary close; False if the position is already gone."""
        if not self.alive[pid]:
            return False
        self._remove(pid)
        return True

    def crossed(self, price: float) -> list[Position]:
        """Remove and return every open position whose liquidation price ``price`` reached."""
        hit: list[Position] = []
        while self._longs and -self._longs[0][0] >= price:
            self._take(heapq.heappop(self._longs)[1], hit)
        while self._shorts and self._shorts[0][0] <= price:
            self._take(heapq.heappop(self._shorts)[1], hit)
        return hit

    def density(self, side: Side) -> np.ndarray:
        return self.density_long if side is Side.LONG else self.density_short

    def _take(self, pid: int, hit: list[Position]) -> None:
        if self.alive[pid]:
            self._remove(pid)
            hit.append(self.positions[pid])

    def _remove(self, pid: int) -> None:
        self.alive[pid] = False
        self._account(self.positions[pid], -1.0)

    def _account(self, p: Position, sign: float) -> None:
        self.density(p.side)[p.bucket] += sign * p.qty * p.liq_price
        self.open_qty[p.venue] += sign * p.qty
