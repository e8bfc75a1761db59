"""Estimated layer: where leveraged positions would be forced out.

When an instrument's open interest rises by ΔOI (USD) at mark price P, the new positions are split
long/short and spread over leverage tiers; a position opened at P with leverage L is liquidated
at ``P·(1 − 1/L + mmr)`` (long) or ``P·(1 + 1/L − mmr)`` (short). When open interest falls, every
level shrinks by the fraction of the asset's open interest that closed. Levels the mark price
crosses are consumed (those positions are gone), and all levels fade with a half-life because
voluntary closes are invisible.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import operator
from dataclasses import dataclass
from operator import itemgetter

import numpy as np

from processors.engine.common import LONG, SHORT, BoolArray, FloatArray, IntArray
from processors.engine.config import ModelConfig
from processors.engine.grid import PriceGrid
from processors.engine.state import EstimatedState, InstrumentOI

FLUSH_USD = 1e-3
_NO_USD: FloatArray = np.zeros(0)
_NO_USD.flags.writeable = False


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


_TIME = itemgetter(0)
_CHANGE_FIELDS = ("ts", "price", "delta_usd", "long_share", "total_before_usd")


@dataclass(frozen=True)
class Rows:
    """A run of OI observations as Python lists (``code`` indexes the run's instruments)."""

    code: list[int]
    ts: list[int]
    base: list[float]
    usd: list[float]
    price: list[float]

    @staticmethod
    def priced_by_oi(codes: list[int], ts: IntArray, base: FloatArray, usd: FloatArray) -> Rows:
        """Rows priced by the OI they report (USD / base), without those that imply no price:
        before an asset's first mark price, the best price there is."""
        price = np.divide(usd, base, out=np.zeros_like(usd), where=base > 0)
        keep = [i for i, ok in enumerate((price > 0).tolist()) if ok]
        cols = (codes, ts.tolist(), base.tolist(), usd.tolist(), price.tolist())
        code, ts_, base_, usd_, price_ = ([col[i] for i in keep] for col in cols)
        return Rows(code, ts_, base_, usd_, price_)


def _ratio(price: float, reference: float) -> float:
    """price / reference as numpy divides (a zero reference gives inf, not an exception)."""
    if reference != 0.0:
        return price / reference
    if math.isnan(price) or price == 0.0:
        return math.nan
    return math.copysign(math.inf, price) * math.copysign(1.0, reference)


def _totals_before(start: float, growth: list[float]) -> list[float]:
    """Total OI before each change (time order): a running sum like np.cumsum's."""
    totals: list[float] = []
    running = 0.0
    for n, g in enumerate(growth):
        running = g if n == 0 else running + g
        totals.append(start + running - g)
    return totals


def _changes(
    ts: list[int], price: list[float], delta: list[float], share: list[float], total: list[float]
) -> OIChanges:
    return OIChanges(
        np.array(ts, dtype=np.int64),
        np.array(price, dtype=np.float64),
        np.array(delta, dtype=np.float64),
        np.array(share, dtype=np.float64),
        np.array(total, dtype=np.float64),
    )


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
        # per-call constants of _add_levels, shaped (side, change, tier)
        self.side_mult = np.stack((self.long_mult, self.short_mult))[:, None, :]
        self.w4 = self.weights[None, None, None, :]
        self.half_lives = np.array([[self.half_life_ms], [self.fresh_half_life_ms]])
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
        rows = Rows(codes.tolist(), ts.tolist(), base.tolist(), usd.tolist(), price.tolist())
        return self.observe_rows(keys, rows)

    def observe_rows(
        self, keys: list[tuple[str, str]], rows: Rows
    ) -> tuple[OIChanges, dict[int, int]]:
        """``observe`` on Python lists."""
        if not rows.code:  # nothing to compare; a new instrument has no baseline yet
            return _changes([], [], [], [], []), {}
        held = [self._held_row(k, key, rows) for k, key in enumerate(keys)]
        # Plain Python over the rows (a run holds ~10-40): the same float operations, in the
        # same order, as the column version this replaced, at a fraction of numpy's per-call cost.
        order = sorted(
            range(len(rows.code)), key=list(zip(rows.code, rows.ts, strict=True)).__getitem__
        )
        fresh = [i for i in order if rows.ts[i] > held[rows.code[i]].ts]
        deltas, growth, previous_px, firsts_at = self._deltas(rows, fresh, held)
        fresh_ts = [rows.ts[i] for i in fresh]
        fresh_px = [rows.price[i] for i in fresh]
        share = self._shares(fresh_ts, fresh_px, previous_px)
        # ndarray.sum (pairwise) for the total
        start = self.state.total_oi_usd - float(np.add.reduce(np.array(growth, dtype=np.float64)))
        if all(a <= b for a, b in itertools.pairwise(fresh_ts)):
            # already in time order (one row per instrument, the usual case): no reordering
            firsts = {rows.code[fresh[j]]: j for j in firsts_at}
            return _changes(
                fresh_ts, fresh_px, deltas, share, _totals_before(start, growth)
            ), firsts
        by_time = sorted(range(len(fresh)), key=fresh_ts.__getitem__)
        position = [0] * len(by_time)
        for n, j in enumerate(by_time):
            position[j] = n
        changes = _changes(
            [fresh_ts[j] for j in by_time],
            [fresh_px[j] for j in by_time],
            [deltas[j] for j in by_time],
            [share[j] for j in by_time],
            _totals_before(start, [growth[j] for j in by_time]),
        )
        return changes, {rows.code[fresh[j]]: position[j] for j in firsts_at}

    def _deltas(
        self, rows: Rows, fresh: list[int], held: list[InstrumentOI]
    ) -> tuple[list[float], list[float], list[float], list[int]]:
        """Per fresh row (sorted by instrument, then time): the change in positions, the change
        in USD open interest, the price before; and which rows are an instrument's first.

        Each instrument's newest fresh row becomes its held observation (after its first row
        read the held one: rows come grouped by instrument).
        """
        code, base, usd, price = rows.code, rows.base, rows.usd, rows.price
        deltas: list[float] = []
        growth: list[float] = []
        previous_px: list[float] = []
        firsts_at: list[int] = []
        last = len(fresh) - 1
        last_code = -1
        for j, i in enumerate(fresh):
            k = code[i]
            if k != last_code:
                h = held[k]
                b_base, b_usd, b_px, inverse = h.oi_base, h.oi_usd, h.price, h.inverse
                firsts_at.append(j)
                last_code = k
            g = usd[i] - b_usd
            growth.append(g)
            deltas.append(g if inverse else (base[i] - b_base) * price[i])
            previous_px.append(b_px)
            b_base, b_usd, b_px = base[i], usd[i], price[i]
            if j == last or code[fresh[j + 1]] != k:
                self.state.total_oi_usd += usd[i] - h.oi_usd
                h.oi_base, h.oi_usd, h.price, h.ts = base[i], usd[i], price[i], rows.ts[i]
        return deltas, growth, previous_px, firsts_at

    def _shares(self, ts: list[int], prices: list[float], previous_px: list[float]) -> list[float]:
        """Long share of each fresh row's new positions (``_long_share`` on Python floats)."""
        reference = previous_px
        if self.cfg.direction_window_s > 0 and ts:
            reference = self._reference_rows(ts, prices)
        if self.cfg.split == "even":
            return [0.5] * len(ts)
        full = self.cfg.direction_full_bp / 10_000.0
        bias = self.cfg.direction_bias
        shares: list[float] = []
        for p, r in zip(prices, reference, strict=True):
            x = ((p / r if r != 0.0 else _ratio(p, r)) - 1.0) / full
            # np.clip(x, -1, 1): NaN stays NaN, -0.0 stays -0.0
            shares.append(0.5 + bias * (-1.0 if x < -1.0 else 1.0 if x > 1.0 else x))
        return shares

    def _held_row(self, k: int, key: tuple[str, str], rows: Rows) -> InstrumentOI:
        """The instrument's last observation; a new instrument starts from its first row."""
        venue, instrument = key
        name = f"{venue}:{instrument}"
        held = self.state.instruments.get(name)
        if held is None:
            # np.argmax(codes == k): the first row of the instrument (row 0 if it has none)
            i = rows.code.index(k) if k in rows.code else 0
            held = self.state.instruments[name] = InstrumentOI(
                venue=venue,
                instrument=instrument,
                inverse=is_inverse(instrument),
                oi_base=rows.base[i],
                oi_usd=rows.usd[i],
                price=rows.price[i],
                ts=rows.ts[i],
            )
            self.state.total_oi_usd += rows.usd[i]
        return held

    def _reference_rows(self, ts: list[int], price: list[float]) -> list[float]:
        """The price each row's direction is measured from (``direction_window_s`` > 0).

        The price that long before, from the asset's recent observations (any instrument), so
        the split does not depend on a venue's polling cadence: a 1 s poll would see almost no
        move even while a crowd of takers lifts price. Without the window, the caller uses the
        price at the instrument's previous observation.

        Python lists (a run holds ~10-40 rows, the history ~60 points): the stable time sort and
        ``searchsorted(side="right") - 1`` lookups of the NumPy form it replaced; values are
        only picked, never computed."""
        window_ms = self.cfg.direction_window_s * 1000
        history = self.state.prices
        new = sorted(zip(ts, price, strict=True), key=_TIME)  # stable, as argsort(kind="stable")
        points = history + new  # the history is time-sorted (written only by _keep_history)
        if history and history[-1][0] > new[0][0]:
            points.sort(key=_TIME)  # a point older than the history's newest: merge (stable)
        times = [p[0] for p in points]
        reference = []
        for t in ts:
            at = bisect.bisect_right(times, t - window_ms) - 1
            reference.append(points[at if at > 0 else 0][1])
        self._keep_history(points, times, window_ms)
        return reference

    def _keep_history(
        self, points: list[tuple[int, float]], times: list[int], window_ms: int
    ) -> None:
        """Keeps the last point of each second over the window, plus one older anchor.

        ``points`` are time-sorted. The anchor is the last point of a second that precedes the
        first one inside the window; nothing before it is kept, so only the tail is scanned.
        """
        anchor = bisect.bisect_left(times, times[-1] - window_ms) - 1
        while anchor >= 0 and times[anchor] // 1000 == times[anchor + 1] // 1000:
            anchor -= 1
        start = max(anchor, 0)
        seconds = [t // 1000 for t in times[start:]]
        kept = [p for p, a, b in zip(points[start:], seconds, seconds[1:], strict=False) if a != b]
        kept.append(points[-1])
        self.state.prices = kept

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
        after = [1.0] * len(deltas)
        if any(d < 0 for d in deltas):  # else every factor is 1: nothing to scale
            factors, level_total = self._removal_factors(changes, deltas)
            # in Python, in numpy's order: np.prod and np.cumprod multiply sequentially
            total_factor = functools.reduce(operator.mul, factors)
            running = 1.0
            for i in range(len(factors) - 1, 0, -1):
                running = factors[i] if i == len(factors) - 1 else running * factors[i]
                after[i - 1] = running
            if total_factor != 1.0:
                self.state.removed_usd += (1 - total_factor) * level_total
                self.state.levels *= total_factor
                self.state.fresh *= total_factor
        if any(d > 0 for d in deltas):
            adds = changes.delta_usd > 0
            self._add_levels(changes, adds, np.array(after, dtype=np.float64), now)

    def _removal_factors(
        self, changes: OIChanges, deltas: list[float]
    ) -> tuple[list[float], float]:
        """Per change, the factor every level keeps (1 for rises); and the levels' total
        before any change.

        ``removal = "layer"``: a fall of ΔOI removes ΔOI from the layer (the positions we saw
        open); ``"open_interest"``: the share ΔOI / total OI of every level.
        """
        factors = [1.0] * len(deltas)
        level_total = float(self.state.levels.sum())
        by_layer = self.cfg.removal == "layer"
        total = level_total
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
        return factors, level_total

    def _add_levels(self, c: OIChanges, adds: BoolArray, after: FloatArray, now: int) -> None:
        rows = slice(None) if np.count_nonzero(adds) == adds.size else adds  # a slice: no copy
        age = (now - c.ts[rows]).astype(np.float64)
        # (layer, change): the levels and their fresh copy, each with its half-life
        amount = (c.delta_usd[rows] * after[rows]) * np.exp2(-age / self.half_lives)
        share = c.long_share[rows]
        self.state.added_usd += float(amount[0].sum())
        parts = np.empty((2, share.size))  # (side, change)
        parts[LONG], parts[SHORT] = share, 1 - share
        # (layer, side, change, tier): the same element-wise products as side by side
        amounts = (amount[:, None, :, None] * parts[None, :, :, None]) * self.w4
        idx = self.grid.indices((c.price[rows][None, :, None] * self.side_mult).reshape(-1))
        # one reduction for both bounds: a negative index is a huge unsigned one
        if int(idx.view(np.uint64).max()) >= self.grid.size:
            self._deposit_by_side(idx, amounts)
            return
        self.state.off_grid_usd += 0.0  # == the empty sums, kept for -0.0's sake
        idx[idx.size // 2 :] += self.grid.size  # short rows: indices into the flat (2, size)
        for arr, layer_amounts in zip(self.arrays(), amounts, strict=True):
            if arr.flags.c_contiguous:
                # sides never share a flat index: each bucket's adds keep their order
                np.add.at(arr.reshape(-1), idx, layer_amounts.reshape(-1))
            else:
                np.add.at(arr, np.divmod(idx, self.grid.size), layer_amounts.reshape(-1))

    def _deposit_by_side(self, idx: IntArray, amounts: FloatArray) -> None:
        """Some levels fall off the grid: side by side, what falls off the levels (not their
        fresh copy) tallied in its order, the rest added."""
        on_grid = (idx >= 0) & (idx < self.grid.size)
        half = idx.size // 2
        sides = ((LONG, slice(0, half)), (SHORT, slice(half, None)))
        for layer, (arr, layer_amounts) in enumerate(zip(self.arrays(), amounts, strict=True)):
            for side, rows in sides:
                usd, ok = layer_amounts[side].reshape(-1), on_grid[rows]
                if layer == 0:
                    self.state.off_grid_usd += float(usd[~ok].sum())
                np.add.at(arr[side], idx[rows][ok], usd[ok])

    # --- price ------------------------------------------------------------------------------

    def consume(self, low: float, high: float) -> Consumed:
        """Removes the levels that the price path [low, high] crossed.

        A long level is consumed once price trades in or below its bucket, a short level once
        price trades in or above its bucket (those positions have been liquidated).
        """
        levels = self.state.levels
        lo_i = min(max(self.grid.index(low), 0), self.grid.size)
        hi_i = min(max(self.grid.index(high) + 1, 0), self.grid.size)
        # nonzero() on the 1-d rows: np.flatnonzero's result without its ravel
        long_idx = levels[LONG, lo_i:].nonzero()[0] + lo_i
        short_idx = levels[SHORT, :hi_i].nonzero()[0]
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
