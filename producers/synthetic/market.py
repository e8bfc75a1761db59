"""The simulated market: one price path per asset, positions, voluntary closes, forced liquidations.

Per step (``step_ms``, default 100 ms) and asset: open the positions that arrive, apply
voluntary closes, move the log price by drift + volatility·z + scripted pushes + the released
part of pending forced-order impact, then liquidate every position whose liquidation price the
new price reached. Each forced order adds impact in its own direction (a long liquidated is a
market sell), released over ~``impact_tau_s``: that feedback is what lets cascades emerge
when liquidation prices are dense.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from liqwatch.schema import Label, Side, Venue
from producers.synthetic.bands import BandTracker
from producers.synthetic.book import LogGrid, Position, PositionBook, bankruptcy_price
from producers.synthetic.book import liquidation_price as liq_price_of
from producers.synthetic.frames import instrument
from producers.synthetic.orders import Order, OrderPlan
from producers.synthetic.scenario import AssetSpec, Scenario

# numpy seed-sequence tags: one independent stream per purpose, so adding a crowd does not
# change the price path and adding a venue does not change the positions' timing.
_COMMON_SHOCKS = 10_000
_SHOCKS, _ORDERS, _LIQ_TIMES, _UNWINDS = 0, 1, 2, 3


@dataclass(frozen=True)
class ForcedLiquidation:
    """One forced liquidation as it really happened (before any venue sampling)."""

    ts: int
    asset: str
    side: Side
    venue: Venue
    qty: float
    liq_price: float
    bankruptcy: float
    fill_price: float
    notional_usd: float
    crowd: str | None


@dataclass
class AssetTape:
    """What happened to one asset: per-second samples, forced liquidations, band labels."""

    asset: str
    sample_ts: list[int] = field(default_factory=list)
    price: list[float] = field(default_factory=list)
    open_qty: list[list[float]] = field(default_factory=list)  # per second, per venue index
    liquidations: list[ForcedLiquidation] = field(default_factory=list)
    band_labels: list[Label] = field(default_factory=list)


def simulate(scenario: Scenario) -> list[AssetTape]:
    n_steps = scenario.duration_ms // scenario.step_ms
    common = np.random.default_rng([scenario.seed, _COMMON_SHOCKS]).standard_normal(n_steps)
    return [
        AssetSim(scenario, spec, index, common).run() for index, spec in enumerate(scenario.assets)
    ]


def exogenous_moves(scenario: Scenario, spec: AssetSpec, shocks: np.ndarray) -> np.ndarray:
    """Per-step log-price change before forced-order impact: regimes plus scripted pushes."""
    n = len(shocks)
    step_min = scenario.step_ms / 60_000
    vol = np.zeros(n)
    drift = np.zeros(n)
    for regime in spec.regimes:
        start = min(n, round(regime.at_min / step_min))
        vol[start:] = regime.vol_bp * 1e-4 * math.sqrt(step_min)
        drift[start:] = regime.drift_bp * 1e-4 * step_min
    moves: np.ndarray = drift + vol * shocks
    for push in scenario.pushes:
        if push.asset == spec.asset:
            start = round(push.at_min / step_min)
            steps = max(1, round(push.over_s * 1000 / scenario.step_ms))
            moves[start : start + steps] += math.log1p(push.move_pct / 100) / steps
    return moves


class AssetSim:
    def __init__(self, scenario: Scenario, spec: AssetSpec, index: int, common: np.ndarray) -> None:
        self.s = scenario
        self.spec = spec
        seed = scenario.seed
        own = np.random.default_rng([seed, index, _SHOCKS]).standard_normal(len(common))
        rho = scenario.correlation
        shocks = rho * common + math.sqrt(1 - rho * rho) * own
        self.moves: list[float] = exogenous_moves(scenario, spec, shocks).tolist()
        self.orders = OrderPlan(
            scenario, spec, np.random.default_rng([seed, index, _ORDERS])
        ).orders()
        self.liq_rng = np.random.default_rng([seed, index, _LIQ_TIMES])
        self.unwind_rng = np.random.default_rng([seed, index, _UNWINDS])
        grid = LogGrid(spec.start_price, scenario.labels.bucket_bp)
        self.book = PositionBook(grid, len(scenario.venues))
        self.bands = BandTracker(spec, scenario.labels, grid)
        self.tape = AssetTape(spec.asset)
        self.lots = [instrument(v.venue, spec.asset).lot for v in scenario.venues]
        self.next_order = 0
        self.closes: list[tuple[int, int]] = []
        self.unwinds = sorted(
            (round(u.at_min * 60_000 / scenario.step_ms), i)
            for i, u in enumerate(scenario.unwinds)
            if scenario.crowds and self._crowd_asset(u.crowd) == spec.asset
        )

    def _crowd_asset(self, name: str) -> str:
        return next(c.asset for c in self.s.crowds if c.name == name)

    def run(self) -> AssetTape:
        step_ms = self.s.step_ms
        steps_per_s = 1000 // step_ms
        impact_per_usd = self.spec.impact_bp_per_musd * 1e-4 / 1e6
        release = 1 - math.exp(-step_ms / 1000 / self.spec.impact_tau_s)
        log_p = math.log(self.spec.start_price)
        price = self.spec.start_price
        pending = 0.0
        for k, move in enumerate(self.moves):
            t = self.s.start_ms + k * step_ms
            if k % steps_per_s == 0:
                self._sample(t, price)
            pending += self._voluntary_flow(k, price)
            released = pending * release
            pending -= released
            log_p += move + released
            price = math.exp(log_p)
            hit = self.book.crossed(price)
            if hit:
                forced = self._liquidate(t, price, hit)
                pending += impact_per_usd * forced
        self.tape.band_labels = self.bands.finish(self.s.end_ms)
        return self.tape

    def _voluntary_flow(self, k: int, price: float) -> float:
        """Opens, crowd unwinds and voluntary closes due at step ``k``; returns the opens'
        pending log-price impact (opening takers: a long buys, a short sells)."""
        opened = 0.0
        while self.next_order < len(self.orders) and self.orders[self.next_order].step == k:
            order = self.orders[self.next_order]
            self._open(order, price)
            opened += order.notional_usd if order.side is Side.LONG else -order.notional_usd
            self.next_order += 1
        while self.unwinds and self.unwinds[0][0] == k:
            self._unwind(k, heapq.heappop(self.unwinds)[1])
        while self.closes and self.closes[0][0] <= k:
            self.book.close(heapq.heappop(self.closes)[1])
        return opened * self.spec.open_impact_bp_per_musd * 1e-4 / 1e6

    def _sample(self, t: int, price: float) -> None:
        self.tape.sample_ts.append(t)
        self.tape.price.append(price)
        self.tape.open_qty.append(list(self.book.open_qty))
        self.bands.observe(t, price, self.book)

    def _open(self, order: Order, price: float) -> None:
        lot = self.lots[order.venue]
        qty = max(1, round(order.notional_usd / price / lot)) * lot
        side, lev, mmr = order.side, order.leverage, self.s.mmr
        liq = liq_price_of(side, price, lev, mmr)
        pid = len(self.book.positions)
        position = Position(
            pid=pid,
            side=side,
            venue=order.venue,
            qty=round(qty, 9),
            entry=price,
            leverage=lev,
            liq_price=liq,
            bankruptcy=bankruptcy_price(side, price, lev),
            bucket=self.book.grid.index(liq),
            crowd=order.crowd,
        )
        self.book.open(position)
        heapq.heappush(self.closes, (order.step + order.hold_steps, pid))

    def _unwind(self, step: int, index: int) -> None:
        unwind = self.s.unwinds[index]
        members = [
            p.pid for p in self.book.positions if p.crowd == unwind.crowd and self.book.alive[p.pid]
        ]
        chosen = self.unwind_rng.permutation(len(members))[: round(unwind.fraction * len(members))]
        span = max(1, round(unwind.over_s * 1000 / self.s.step_ms))
        offsets = self.unwind_rng.integers(0, span, len(chosen))
        for i, offset in zip(chosen, offsets, strict=True):
            heapq.heappush(self.closes, (step + int(offset), members[int(i)]))

    def _liquidate(self, t: int, price: float, hit: list[Position]) -> float:
        """Record the forced liquidations; returns their signed USD flow (sells negative)."""
        offsets = np.sort(self.liq_rng.integers(0, self.s.step_ms, len(hit)))
        flow = 0.0
        for position, offset in zip(hit, offsets, strict=True):
            notional = position.qty * price
            self.tape.liquidations.append(
                ForcedLiquidation(
                    ts=t + int(offset),
                    asset=self.spec.asset,
                    side=position.side,
                    venue=self.s.venues[position.venue].venue,
                    qty=position.qty,
                    liq_price=position.liq_price,
                    bankruptcy=position.bankruptcy,
                    fill_price=price,
                    notional_usd=notional,
                    crowd=position.crowd,
                )
            )
            flow += -notional if position.side is Side.LONG else notional
        return flow
