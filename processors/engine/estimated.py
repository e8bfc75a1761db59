"""Estimated layer: where leveraged positions would be forced out.

When an instrument's open interest rises by ΔOI (USD) at mark price P, the new positions are split
long/short and spread over leverage tiers; a position opened at P with leverage L is liquidated
at ``P·(1 − 1/L + mmr)`` (long) or ``P·(1 + 1/L − mmr)`` (short). When open interest falls, every
level shrinks by the fraction of the asset's open interest that closed. Levels the mark price
crosses are consumed (those positions are gone), and all levels fade with a half-life because
voluntary closes are invisible.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass

import msgspec
import numpy as np

from processors.engine.common import LONG, SHORT, BoolArray, FloatArray, IntArray
from processors.engine.config import ModelConfig
from processors.engine.grid import PriceGrid

FLUSH_USD = 1e-3
_NO_USD: FloatArray = np.zeros(0)
_NO_USD.flags.writeable = False


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
    fresh: np.ndarray  # (side, bucket) the same, fading fast: how much of a level is new
    decayed_at: int
    instruments: dict[str, InstrumentOI]
    total_oi_usd: float = 0.0  # sum of the instruments' latest oi_usd
    # (ts, mark price) of recent observations, for the direction split over a fixed horizon
    prices: list[tuple[int, float]] = msgspec.field(default_factory=list)
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
class OIChanges:
    """Open-interest changes (columns), each since the instrument's previous observation."""

    ts: IntArray
    price: FloatArray
    delta_usd: FloatArray  # > 0 opened, < 0 closed
    long_share: FloatArray
    total_before_usd: FloatArray

    @staticmethod
    def concat(parts: list[OIChanges]) -> OIChanges:
        """Joins per-instrument changes in time order (stable)."""
        cols = {f: np.concatenate([getattr(p, f) for p in parts]) for f in _CHANGE_FIELDS}
        order = np.argsort(cols["ts"], kind="stable")
        return OIChanges(**{f: v[order] for f, v in cols.items()})


_CHANGE_FIELDS = ("ts", "price", "delta_usd", "long_share", "total_before_usd")


@dataclass(frozen=True)
class _Rows:
    """A run of OI observations as Python lists (``code`` indexes the run's instruments)."""

    code: list[int]
    ts: list[int]
    base: list[float]
    usd: list[float]
    price: list[float]

    def instrument_then_time(self, i: int) -> tuple[int, int]:
        return self.code[i], self.ts[i]


@dataclass(frozen=True)
class _Buckets:
    idx: IntArray
    on_grid: BoolArray
    all_on_grid: bool


def _ratio(price: float, reference: float) -> float:
    """price / reference as numpy divides (a zero reference gives inf, not an exception)."""
    if reference != 0.0:
        return price / reference
    if math.isnan(price) or price == 0.0:
        return math.nan
    return math.copysign(math.inf, price) * math.copysign(1.0, reference)


def is_inverse(instrument: str) -> bool:
    """Normalized names end in -INVERSE for coin-margined contracts (BTC-USD-INVERSE)."""
    return instrument.upper().endswith("INVERSE")


def liquidation_prices(cfg: ModelConfig, price: float) -> tuple[list[float], list[float]]:
    """(long, short) liquidation prices of positions opened at ``price``, one per tier."""
    longs = [price * (1 - 1 / lev + cfg.mmr) for lev, _ in cfg.tiers]
    shorts = [price * (1 + 1 / lev - cfg.mmr) for lev, _ in cfg.tiers]
    return longs, shorts


class EstimatedLayer:
    def __init__(
        self, cfg: ModelConfig, grid: PriceGrid, state: EstimatedState | None = None
    ) -> None:
        self.cfg = cfg
        self.grid = grid
        self.half_life_ms = cfg.half_life_h * 3_600_000.0
        self.fresh_half_life_ms = cfg.fresh_half_life_s * 1000.0
        lev = np.array([t[0] for t in cfg.tiers])
        self.weights = np.array([t[1] for t in cfg.tiers])
        self.long_mult = 1 - 1 / lev + cfg.mmr
        self.short_mult = 1 + 1 / lev - cfg.mmr
        self.state = state or EstimatedState(
            levels=np.zeros((2, grid.size)),
            fresh=np.zeros((2, grid.size)),
            decayed_at=0,
            instruments={},
        )

    # --- open interest ----------------------------------------------------------------------

    def total_oi_usd(self) -> float:
        return self.state.total_oi_usd

    def observe(
        self,
        keys: list[tuple[str, str]],
        codes: IntArray,
        *,
        ts: IntArray,
        base: FloatArray,
        usd: FloatArray,
        price: FloatArray,
    ) -> tuple[OIChanges, dict[int, int]]:
        """Records a time-sorted run of OI observations of several instruments.

        ``codes[i]`` indexes ``keys`` (venue, instrument). Returns the changes since each
        instrument's previous observation, in time order, and per instrument the position of
        its first change. Linear OI in USD also moves with price, so for linear contracts only
        the change in contracts (base units) × price is new positions; inverse contracts count
        in USD. Observations not newer than the one held say nothing new and are skipped.
        """
        held = [self._held(k, key, codes, (ts, base, usd, price)) for k, key in enumerate(keys)]
        # Plain Python over the rows (a run holds ~10-40): the same float operations, in the
        # same order, as the column version this replaced, at a fraction of numpy's per-call cost.
        rows = _Rows(codes.tolist(), ts.tolist(), base.tolist(), usd.tolist(), price.tolist())
        order = sorted(range(len(rows.code)), key=rows.instrument_then_time)
        fresh = [i for i in order if rows.ts[i] > held[rows.code[i]].ts]
        deltas, growth, previous_px, firsts_at = self._deltas(rows, fresh, held)
        share = self._shares(rows, fresh, previous_px)
        self._hold_last_rows(rows, fresh, held)
        by_time = sorted(range(len(fresh)), key=[rows.ts[i] for i in fresh].__getitem__)
        # ndarray.sum (pairwise) for the total, a running sum (== np.cumsum) per change
        start = self.state.total_oi_usd - float(np.add.reduce(np.array(growth, dtype=np.float64)))
        total_before: list[float] = []
        running = 0.0
        for n, j in enumerate(by_time):
            running = growth[j] if n == 0 else running + growth[j]
            total_before.append(start + running - growth[j])
        changes = OIChanges(
            np.array([rows.ts[fresh[j]] for j in by_time], dtype=np.int64),
            np.array([rows.price[fresh[j]] for j in by_time], dtype=np.float64),
            np.array([deltas[j] for j in by_time], dtype=np.float64),
            np.array([share[j] for j in by_time], dtype=np.float64),
            np.array(total_before, dtype=np.float64),
        )
        position = [0] * len(by_time)
        for n, j in enumerate(by_time):
            position[j] = n
        firsts = {rows.code[fresh[j]]: position[j] for j in firsts_at}
        return changes, firsts

    def _deltas(
        self, rows: _Rows, fresh: list[int], held: list[InstrumentOI]
    ) -> tuple[list[float], list[float], list[float], list[int]]:
        """Per fresh row (sorted by instrument, then time): the change in positions, the change
        in USD open interest, the price before; and which rows are an instrument's first."""
        deltas: list[float] = []
        growth: list[float] = []
        previous_px: list[float] = []
        firsts_at: list[int] = []
        last_code = -1
        b_base = b_usd = b_px = 0.0
        for j, i in enumerate(fresh):
            k = rows.code[i]
            if k != last_code:
                h = held[k]
                b_base, b_usd, b_px = h.oi_base, h.oi_usd, h.price
                firsts_at.append(j)
                last_code = k
            g = rows.usd[i] - b_usd
            growth.append(g)
            deltas.append(g if held[k].inverse else (rows.base[i] - b_base) * rows.price[i])
            previous_px.append(b_px)
            b_base, b_usd, b_px = rows.base[i], rows.usd[i], rows.price[i]
        return deltas, growth, previous_px, firsts_at

    def _shares(self, rows: _Rows, fresh: list[int], previous_px: list[float]) -> list[float]:
        """Long share of each fresh row's new positions (``_long_share`` on Python floats)."""
        prices = [rows.price[i] for i in fresh]
        reference = previous_px
        if self.cfg.direction_window_s > 0 and fresh:
            ts = np.array([rows.ts[i] for i in fresh], dtype=np.int64)
            px = np.array(prices, dtype=np.float64)
            prev = np.array(previous_px, dtype=np.float64)
            reference = self._reference(ts, px, prev).tolist()
        if self.cfg.split == "even":
            return [0.5] * len(fresh)
        full = self.cfg.direction_full_bp / 10_000.0
        bias = self.cfg.direction_bias
        shares: list[float] = []
        for p, r in zip(prices, reference, strict=True):
            x = ((p / r if r != 0.0 else _ratio(p, r)) - 1.0) / full
            # np.clip(x, -1, 1): NaN stays NaN, -0.0 stays -0.0
            shares.append(0.5 + bias * (-1.0 if x < -1.0 else 1.0 if x > 1.0 else x))
        return shares

    def _hold_last_rows(self, rows: _Rows, fresh: list[int], held: list[InstrumentOI]) -> None:
        """Each instrument's newest fresh row becomes its held observation."""
        for j, i in enumerate(fresh):
            k = rows.code[i]
            if j + 1 < len(fresh) and rows.code[fresh[j + 1]] == k:
                continue
            h = held[k]
            self.state.total_oi_usd += rows.usd[i] - h.oi_usd
            h.oi_base, h.oi_usd, h.price, h.ts = (
                rows.base[i],
                rows.usd[i],
                rows.price[i],
                rows.ts[i],
            )

    def _held(
        self,
        k: int,
        key: tuple[str, str],
        codes: IntArray,
        cols: tuple[IntArray, FloatArray, FloatArray, FloatArray],
    ) -> InstrumentOI:
        """The instrument's last observation; a new instrument starts from its first one."""
        ts, base, usd, price = cols
        venue, instrument = key
        name = f"{venue}:{instrument}"
        held = self.state.instruments.get(name)
        if held is None:
            i = int(np.argmax(codes == k))
            held = self.state.instruments[name] = InstrumentOI(
                venue=venue,
                instrument=instrument,
                inverse=is_inverse(instrument),
                oi_base=float(base[i]),
                oi_usd=float(usd[i]),
                price=float(price[i]),
                ts=int(ts[i]),
            )
            self.state.total_oi_usd += float(usd[i])
        return held

    def _reference(self, ts: IntArray, price: FloatArray, previous: FloatArray) -> FloatArray:
        """The price each change's direction is measured from.

        With ``direction_window_s`` the price that long before (from the asset's recent
        observations, any instrument), so the split does not depend on a venue's polling
        cadence: a 1 s poll would see almost no move even while a crowd of takers lifts price;
        otherwise the price at the instrument's previous observation.
        """
        window_ms = self.cfg.direction_window_s * 1000
        if window_ms <= 0 or ts.size == 0:
            return previous
        held = self.state.prices
        hist_ts = np.array([h[0] for h in held] + ts.tolist(), dtype=np.int64)
        hist_px = np.array([h[1] for h in held] + price.tolist())
        order = np.argsort(hist_ts, kind="stable")
        hist_ts, hist_px = hist_ts[order], hist_px[order]
        at = np.searchsorted(hist_ts, ts - window_ms, side="right") - 1
        reference = hist_px[np.maximum(at, 0)]
        self._keep_history(hist_ts, hist_px, window_ms)
        return np.asarray(reference, dtype=np.float64)

    def _keep_history(self, hist_ts: IntArray, hist_px: FloatArray, window_ms: int) -> None:
        """Keeps the last point of each second over the window, plus one older anchor."""
        second = hist_ts // 1000
        last_of_second = np.append(second[1:] != second[:-1], True)
        hist_ts, hist_px = hist_ts[last_of_second], hist_px[last_of_second]
        inside = np.flatnonzero(hist_ts >= int(hist_ts[-1]) - window_ms)
        start = max(int(inside[0]) - 1, 0)
        self.state.prices = list(
            zip(hist_ts[start:].tolist(), hist_px[start:].tolist(), strict=True)
        )

    def _long_share(self, ret: FloatArray) -> FloatArray:
        """Share of new open interest assumed to be leveraged longs, from the price move."""
        if self.cfg.split == "even":
            return np.full(ret.shape, 0.5)
        full = self.cfg.direction_full_bp / 10_000.0
        return 0.5 + self.cfg.direction_bias * np.clip(ret / full, -1.0, 1.0)

    def apply(self, changes: OIChanges) -> None:
        """Adds and removes levels for a chunk of changes, in order, vectorized.

        A removal scales everything present before it, so each addition is weighted by the
        product of the removal factors that come after it.
        """
        if changes.ts.size == 0:
            return
        now = int(changes.ts.max())
        self.decay_to(now)
        deltas = changes.delta_usd.tolist()
        factors = self._removal_factors(changes, deltas)
        # in Python, in numpy's order: np.prod and np.cumprod multiply sequentially
        total_factor = functools.reduce(operator.mul, factors)
        after = [1.0] * len(factors)
        running = 1.0
        for i in range(len(factors) - 1, 0, -1):
            running = factors[i] if i == len(factors) - 1 else running * factors[i]
            after[i - 1] = running
        if total_factor != 1.0:
            self.state.removed_usd += (1 - total_factor) * float(self.state.levels.sum())
            self.state.levels *= total_factor
            self.state.fresh *= total_factor
        if any(d > 0 for d in deltas):
            adds = changes.delta_usd > 0
            self._add_levels(changes, adds, np.array(after, dtype=np.float64), now)

    def _removal_factors(self, changes: OIChanges, deltas: list[float]) -> list[float]:
        """Per change, the factor every level keeps (1 for rises).

        ``removal = "layer"``: a fall of ΔOI removes ΔOI from the layer (the positions we saw
        open); ``"open_interest"``: the share ΔOI / total OI of every level.
        """
        factors = [1.0] * len(deltas)
        if not any(d < 0 for d in deltas):
            return factors
        by_layer = self.cfg.removal == "layer"
        total = float(self.state.levels.sum())
        totals_before = [] if by_layer else changes.total_before_usd.tolist()
        rises_so_far = 0.0  # np.cumsum of the rises, sequential like numpy's
        grown = 0.0
        for i, delta in enumerate(deltas):
            rise = delta if delta > 0 else 0.0
            rises_so_far = rise if i == 0 else rises_so_far + rise
            if not delta < 0:
                continue
            rises_before = rises_so_far - rise
            # the layer total just before change i: start + rises so far, scaled by removals
            total += rises_before - grown
            grown = rises_before
            base = total if by_layer else totals_before[i]
            keep = max(0.0, 1.0 + delta / base) if base > 0 else 1.0
            total *= keep
            factors[i] = keep
        return factors

    def _add_levels(self, c: OIChanges, adds: BoolArray, after: FloatArray, now: int) -> None:
        age = (now - c.ts[adds]).astype(np.float64)
        usd = c.delta_usd[adds] * after[adds]
        kept = usd * np.exp2(-age / self.half_life_ms)
        fresh = usd * np.exp2(-age / self.fresh_half_life_ms)
        share = c.long_share[adds][:, None]
        price = c.price[adds][:, None]
        self.state.added_usd += float(kept.sum())
        w = self.weights[None, :]
        long_px, short_px = price * self.long_mult[None, :], price * self.short_mult[None, :]
        # bucket indices once per side, shared by the levels and their fresh copy
        long_at, short_at = self._buckets(long_px), self._buckets(short_px)
        for arr, amount in ((self.state.levels, kept), (self.state.fresh, fresh)):
            self._deposit(arr[LONG], long_at, amount[:, None] * share * w)
            self._deposit(arr[SHORT], short_at, amount[:, None] * (1 - share) * w)

    def _buckets(self, prices: FloatArray) -> _Buckets:
        idx = self.grid.indices(prices.reshape(-1))
        on_grid = (idx >= 0) & (idx < self.grid.size)
        return _Buckets(idx, on_grid, bool(on_grid.all()))

    def _deposit(self, target: FloatArray, buckets: _Buckets, usd: FloatArray) -> None:
        amounts = usd.reshape(-1)
        if buckets.all_on_grid:  # the usual case: no masking (the same adds, in order)
            if target.base is self.state.levels:
                self.state.off_grid_usd += 0.0  # == the empty sum, kept for -0.0's sake
            np.add.at(target, buckets.idx, amounts)
            return
        on_grid = buckets.on_grid
        if target.base is self.state.levels:
            self.state.off_grid_usd += float(amounts[~on_grid].sum())
        np.add.at(target, buckets.idx[on_grid], amounts[on_grid])

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
        if long_idx.size == 0 and short_idx.size == 0:
            # the usual case (crossed levels are gone already): nothing to zero or count
            return Consumed(long_idx, _NO_USD, short_idx, _NO_USD)
        out = Consumed(
            long_idx=long_idx + self.grid.offset,
            long_usd=levels[LONG, long_idx].copy(),
            short_idx=short_idx + self.grid.offset,
            short_usd=levels[SHORT, short_idx].copy(),
        )
        levels[LONG, long_idx] = 0.0
        levels[SHORT, short_idx] = 0.0
        self.state.fresh[LONG, long_idx] = 0.0
        self.state.fresh[SHORT, short_idx] = 0.0
        self.state.consumed_usd += float(out.long_usd.sum() + out.short_usd.sum())
        return out

    def decay_to(self, now: int) -> None:
        dt = now - self.state.decayed_at
        if dt <= 0:
            return
        if self.state.decayed_at > 0:
            self.state.levels *= math.exp2(-dt / self.half_life_ms)
            self.state.fresh *= math.exp2(-dt / self.fresh_half_life_ms)
        self.state.decayed_at = now

    def flush_small(self) -> None:
        self.state.levels[self.state.levels < FLUSH_USD] = 0.0
        self.state.fresh[self.state.fresh < FLUSH_USD] = 0.0

    def arrays(self) -> list[FloatArray]:
        return [self.state.levels, self.state.fresh]
