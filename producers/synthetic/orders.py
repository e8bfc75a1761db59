"""Which positions get opened when: background flow, crowds and whales, drawn up front.

Only the entry price depends on the simulated path; everything else (arrival step, side,
leverage, size, venue, holding time) is drawn here with numpy from the scenario's seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liqwatch.schema import Side
from producers.synthetic.scenario import AssetSpec, Crowd, Scenario, Whale


@dataclass(frozen=True)
class Order:
    step: int
    side: Side
    leverage: int
    notional_usd: float
    venue: int  # index into scenario.venues
    hold_steps: int
    crowd: str | None = None


class OrderPlan:
    """Turns the scenario's flow and events for one asset into a time-ordered list of orders."""

    def __init__(self, scenario: Scenario, asset: AssetSpec, rng: np.random.Generator) -> None:
        self.scenario = scenario
        self.asset = asset
        self.rng = rng
        self.step_ms = scenario.step_ms
        self.n_steps = scenario.duration_ms // scenario.step_ms
        self.venues = [v.venue for v in scenario.venues]
        shares = np.array([v.share for v in scenario.venues], dtype=float)
        self.venue_p = shares / shares.sum()

    def orders(self) -> list[Order]:
        orders = self._background()
        for crowd in self.scenario.crowds:
            if crowd.asset == self.asset.asset:
                orders += self._crowd(crowd)
        for whale in self.scenario.whales:
            if whale.asset == self.asset.asset:
                orders.append(self._whale(whale))
        orders.sort(key=lambda o: o.step)  # stable: equal steps keep their drawing order
        return orders

    def _steps(self, minutes: float) -> int:
        return round(minutes * 60_000 / self.step_ms)

    def _hold_steps(self, mean_min: float, n: int) -> np.ndarray:
        return np.maximum(1, self._steps(1) * self.rng.exponential(mean_min, n)).astype(int)

    def _background(self) -> list[Order]:
        flow = self.asset.flow
        n = int(self.rng.poisson(flow.opens_per_min * self.scenario.duration_min))
        steps = np.sort(self.rng.integers(0, self.n_steps, n))
        longs = self.rng.random(n) < flow.long_share
        levs, weights = zip(*sorted(flow.leverage_mix.items()), strict=True)
        p = np.array(weights, dtype=float)
        leverage = self.rng.choice(np.array(levs), size=n, p=p / p.sum())
        size = flow.median_usd * np.exp(flow.size_sigma * self.rng.standard_normal(n))
        size = np.minimum(size, flow.max_usd)
        venue = self.rng.choice(len(self.venues), size=n, p=self.venue_p)
        hold = self._hold_steps(flow.hold_min, n)
        return [
            Order(
                step=int(steps[i]),
                side=Side.LONG if longs[i] else Side.SHORT,
                leverage=int(leverage[i]),
                notional_usd=float(size[i]),
                venue=int(venue[i]),
                hold_steps=int(hold[i]),
            )
            for i in range(n)
        ]

    def _crowd(self, crowd: Crowd) -> list[Order]:
        n = crowd.positions
        start = self._steps(crowd.at_min)
        span = max(1, round(crowd.over_s * 1000 / self.step_ms))
        steps = np.sort(start + self.rng.integers(0, span, n))
        weights = 1 + 0.4 * (self.rng.random(n) - 0.5)
        sizes = crowd.notional_usd * weights / weights.sum()
        leverage = self._crowd_leverage(crowd, n)
        venue = self._crowd_venues(crowd, n)
        hold = self._hold_steps(crowd.hold_min, n)
        return [
            Order(
                step=min(int(steps[i]), self.n_steps - 1),
                side=crowd.side,
                leverage=int(leverage[i]),
                notional_usd=float(sizes[i]),
                venue=int(venue[i]),
                hold_steps=int(hold[i]),
                crowd=crowd.name,
            )
            for i in range(n)
        ]

    def _crowd_leverage(self, crowd: Crowd, n: int) -> np.ndarray:
        if crowd.leverage is not None:
            return np.full(n, crowd.leverage)
        mix = crowd.leverage_mix or self.asset.flow.leverage_mix
        levs, weights = zip(*sorted(mix.items()), strict=True)
        p = np.array(weights, dtype=float)
        return self.rng.choice(np.array(levs), size=n, p=p / p.sum())

    def _crowd_venues(self, crowd: Crowd, n: int) -> np.ndarray:
        if crowd.venues is None:
            return self.rng.choice(len(self.venues), size=n, p=self.venue_p)
        allowed = [self.venues.index(v) for v in crowd.venues]
        p = self.venue_p[allowed] / self.venue_p[allowed].sum()
        return np.array(allowed)[self.rng.choice(len(allowed), size=n, p=p)]

    def _whale(self, whale: Whale) -> Order:
        return Order(
            step=self._steps(whale.at_min),
            side=whale.side,
            leverage=whale.leverage,
            notional_usd=whale.notional_usd,
            venue=self.venues.index(whale.venue),
            hold_steps=self._steps(10_000),
            crowd="whale",
        )
