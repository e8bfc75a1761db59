"""The open-interest and mark-price paths' fast paths (oim4) give bit-identical results to
the forms they replaced, which are kept here (``reference_*``/old forms, verbatim but for names).

- inputs: ``_order`` skips the selection when every event is valid, ``_take`` always maps,
  ``_positive`` starts from the first column; ``sliced`` builds the columns with cached field
  names; ``instrument_codes`` gives the key indices as a list; ``latest_by_instrument``.
- ``MarketContext.seen_all``/``marks_seen``: ``seen``/``mark`` per instrument, batched;
  ``stale_after_ms`` is cached and ``stale_changes`` returns at once when nothing changed.
- ``EstimatedLayer``: ``observe_rows`` works on Python lists (``observe`` wraps it) and holds
  each instrument's last row in ``_deltas``; ``_reference_rows``/``_keep_history`` replace the
  numpy history lookups with list sorts and bisects; ``apply`` skips the factor loops when
  nothing fell and reuses the levels' sum; ``_add_levels`` deposits both sides and both
  layers with one set of array operations; ``consume`` uses ``nonzero()[0]``.
- ``SweepDetector.on_prices`` skips clusters two buckets or more from the run's extremes,
  decides from the extremes which clusters price reached and only builds their masks;
  ``credit`` returns at once when nothing was consumed.
- ``AssetEngine._chunked`` skips the search when a run ends before the next tick;
  ``_marks``/``_open_interest``/``_net_of_forced`` use the batched and list forms above.

The end-to-end tests run the engine on the worker benchmark's stress load (frozen, seeded) with
every old form patched in and compare every output, snapshot and dead letter byte for byte.
Helpers that replace a numpy expression get a hypothesis property test against it.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from dataclasses import fields, replace
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liqwatch import codec
from liqwatch.bench.worker_load import StressLoad, stress_envelopes
from liqwatch.schema import (
    Completeness,
    Envelope,
    Intensity,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Side,
    Venue,
)
from processors.engine import Engine, EngineConfig, inputs
from processors.engine.asset import AssetEngine
from processors.engine.common import LONG, SHORT
from processors.engine.config import (
    ClusterConfig,
    GridConfig,
    ModelConfig,
    StalenessConfig,
    SweepConfig,
)
from processors.engine.estimated import (
    Consumed,
    EstimatedLayer,
    OIChanges,
    Rows,
    _ratio,
)
from processors.engine.grid import PriceGrid
from processors.engine.inputs import (
    LiqColumns,
    MarkColumns,
    OIColumns,
    instrument_codes,
    latest_by_instrument,
    liquidation_columns,
    mark_columns,
    oi_columns,
)
from processors.engine.inputs import (
    sliced as fast_sliced,
)
from processors.engine.market import MarketContext
from processors.engine.reporting import Output
from processors.engine.state import TrackedCluster
from processors.engine.sweep import SweepDetector, SweepResult
from processors.engine.tracker import ClusterTracker
from tests.engine.references import held_from_columns, sliced_mask
from tests.engine.replay import Run, assert_same_run, run_engine, stress_blobs

# swaps engine functions for their references: runs on the Python sources
pytestmark = pytest.mark.interpreted

PRICE = 60_000.0
T0 = 1_760_000_000_000

# --- the old forms ----------------------------------------------------------------------

_NO_USD = np.zeros(0)
_VENUE_INSTRUMENT = attrgetter("venue", "instrument")

# --- inputs --------------------------------------------------------------------------------


def positive(*cols: np.ndarray) -> np.ndarray:
    ok = np.ones(cols[0].shape, dtype=bool)
    for col in cols:
        ok &= np.isfinite(col) & (col > 0)
    return ok


def take(events: list[Any], idx: np.ndarray) -> list[Any]:
    if idx.size == len(events) and bool((idx == np.arange(idx.size)).all()):
        return events
    return [events[i] for i in idx.tolist()]


def sliced(cols: Any, a: int, b: int) -> Any:
    parts = {f.name: getattr(cols, f.name)[a:b] for f in fields(cols)}
    return replace(cols, **parts)


def order(ts: np.ndarray, ok: np.ndarray, _all_ok: bool = False) -> np.ndarray:
    keep = np.flatnonzero(ok)
    return keep[np.argsort(ts[keep], kind="stable")]


def group_by_instrument(events: list[Any]) -> tuple[list[tuple[str, str]], np.ndarray, list[Any]]:
    pairs = list(map(_VENUE_INSTRUMENT, events))
    latest = dict(zip(pairs, events, strict=True))
    keys = list(latest)
    if len(keys) == 1:
        codes = np.zeros(len(events), dtype=np.int64)
    else:
        index = {k: i for i, k in enumerate(keys)}
        codes = np.fromiter(map(index.__getitem__, pairs), np.int64, len(events))
    return [(str(v), i) for v, i in keys], codes, list(latest.values())


def reordered(
    columns: Callable[[list[Any]], tuple[Any, list[Any]]],
) -> Callable[[list[Any]], tuple[Any, list[Any]]]:
    """A ``*_columns`` function with the old ``_order``/``_take``/``_positive`` (fancy-indexes
    every column and copies the events even when the index is the identity)."""

    def run(events: list[Any]) -> tuple[Any, list[Any]]:
        saved = inputs._order, inputs._take, inputs._positive
        inputs._order, inputs._take, inputs._positive = order, take, positive  # type: ignore[assignment]
        try:
            return columns(events)
        finally:
            inputs._order, inputs._take, inputs._positive = saved

    return run


def old_liquidation_columns(events: list[Liquidation]) -> tuple[LiqColumns, list[Any]]:
    return reordered(liquidation_columns)(events)


def old_mark_columns(events: list[MarkPrice]) -> tuple[MarkColumns, list[Any]]:
    return reordered(mark_columns)(events)


def old_oi_columns(events: list[OpenInterest]) -> tuple[OIColumns, list[Any]]:
    return reordered(oi_columns)(events)


# --- estimated layer -----------------------------------------------------------------------


def reference(self: EstimatedLayer, ts: np.ndarray, price: np.ndarray, previous: np.ndarray) -> Any:
    window_ms = self.cfg.direction_window_s * 1000
    if window_ms <= 0 or ts.size == 0:
        return previous
    held = self.state.prices
    hist_ts = np.array([h[0] for h in held] + ts.tolist(), dtype=np.int64)
    hist_px = np.array([h[1] for h in held] + price.tolist())
    order_ = np.argsort(hist_ts, kind="stable")
    hist_ts, hist_px = hist_ts[order_], hist_px[order_]
    at = np.searchsorted(hist_ts, ts - window_ms, side="right") - 1
    ref = hist_px[np.maximum(at, 0)]
    keep_history(self, hist_ts, hist_px, window_ms)
    return np.asarray(ref, dtype=np.float64)


def keep_history(self: EstimatedLayer, hist_ts: Any, hist_px: Any, window_ms: int) -> None:
    second = hist_ts // 1000
    last_of_second = np.append(second[1:] != second[:-1], True)
    hist_ts, hist_px = hist_ts[last_of_second], hist_px[last_of_second]
    inside = np.flatnonzero(hist_ts >= int(hist_ts[-1]) - window_ms)
    start = max(int(inside[0]) - 1, 0)
    self.state.prices = list(zip(hist_ts[start:].tolist(), hist_px[start:].tolist(), strict=True))


def shares(self: EstimatedLayer, rows: Rows, fresh: list[int], previous_px: list[float]) -> Any:
    prices = [rows.price[i] for i in fresh]
    ref: Any = previous_px
    if self.cfg.direction_window_s > 0 and fresh:
        ts = np.array([rows.ts[i] for i in fresh], dtype=np.int64)
        px = np.array(prices, dtype=np.float64)
        prev = np.array(previous_px, dtype=np.float64)
        ref = reference(self, ts, px, prev).tolist()
    if self.cfg.split == "even":
        return [0.5] * len(fresh)
    full = self.cfg.direction_full_bp / 10_000.0
    bias = self.cfg.direction_bias
    out: list[float] = []
    for p, r in zip(prices, ref, strict=True):
        x = ((p / r if r != 0.0 else _ratio(p, r)) - 1.0) / full
        out.append(0.5 + bias * (-1.0 if x < -1.0 else 1.0 if x > 1.0 else x))
    return out


def observe(
    self: EstimatedLayer,
    keys: list[tuple[str, str]],
    codes: np.ndarray,
    *,
    ts: np.ndarray,
    base: np.ndarray,
    usd: np.ndarray,
    price: np.ndarray,
) -> tuple[OIChanges, dict[int, int]]:
    cols = (ts, base, usd, price)
    held = [held_from_columns(self, k, key, codes, cols) for k, key in enumerate(keys)]
    rows = Rows(codes.tolist(), ts.tolist(), base.tolist(), usd.tolist(), price.tolist())
    order_ = sorted(range(len(rows.code)), key=lambda i: (rows.code[i], rows.ts[i]))
    fresh = [i for i in order_ if rows.ts[i] > held[rows.code[i]].ts]
    deltas, growth, previous_px, firsts_at = old_deltas(rows, fresh, held)
    share = shares(self, rows, fresh, previous_px)
    hold_last_rows(self, rows, fresh, held)
    by_time = sorted(range(len(fresh)), key=[rows.ts[i] for i in fresh].__getitem__)
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
    return changes, {rows.code[fresh[j]]: position[j] for j in firsts_at}


def old_deltas(
    rows: Rows, fresh: list[int], held: list[Any]
) -> tuple[list[float], list[float], list[float], list[int]]:
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


def hold_last_rows(self: EstimatedLayer, rows: Rows, fresh: list[int], held: list[Any]) -> None:
    for j, i in enumerate(fresh):
        k = rows.code[i]
        if j + 1 < len(fresh) and rows.code[fresh[j + 1]] == k:
            continue
        h = held[k]
        self.state.total_oi_usd += rows.usd[i] - h.oi_usd
        h.oi_base, h.oi_usd, h.price, h.ts = rows.base[i], rows.usd[i], rows.price[i], rows.ts[i]


def apply(self: EstimatedLayer, changes: OIChanges) -> None:
    if changes.ts.size == 0:
        return
    now = int(changes.ts.max())
    self.decay_to(now)
    deltas = changes.delta_usd.tolist()
    factors = removal_factors(self, changes, deltas)
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


def removal_factors(self: EstimatedLayer, changes: OIChanges, deltas: list[float]) -> list[float]:
    factors = [1.0] * len(deltas)
    if not any(d < 0 for d in deltas):
        return factors
    by_layer = self.cfg.removal == "layer"
    total = float(self.state.levels.sum())
    totals_before = [] if by_layer else changes.total_before_usd.tolist()
    rises_so_far = 0.0
    grown = 0.0
    for i, delta in enumerate(deltas):
        rise = delta if delta > 0 else 0.0
        rises_so_far = rise if i == 0 else rises_so_far + rise
        if not delta < 0:
            continue
        rises_before = rises_so_far - rise
        total += rises_before - grown
        grown = rises_before
        base = total if by_layer else totals_before[i]
        keep = max(0.0, 1.0 + delta / base) if base > 0 else 1.0
        total *= keep
        factors[i] = keep
    return factors


def add_levels(
    self: EstimatedLayer, c: OIChanges, adds: np.ndarray, after: np.ndarray, now: int
) -> None:
    age = (now - c.ts[adds]).astype(np.float64)
    usd = c.delta_usd[adds] * after[adds]
    kept = usd * np.exp2(-age / self.half_life_ms)
    fresh = usd * np.exp2(-age / self.fresh_half_life_ms)
    share = c.long_share[adds][:, None]
    price = c.price[adds][:, None]
    self.state.added_usd += float(kept.sum())
    w = self.weights[None, :]
    long_px, short_px = price * self.long_mult[None, :], price * self.short_mult[None, :]
    long_at, short_at = buckets(self, long_px), buckets(self, short_px)
    for arr, amount in ((self.state.levels, kept), (self.state.fresh, fresh)):
        counts = arr is self.state.levels  # the levels count what falls off, not their copy
        deposit(self, arr[LONG], long_at, amount[:, None] * share * w, counts)
        deposit(self, arr[SHORT], short_at, amount[:, None] * (1 - share) * w, counts)


def buckets(self: EstimatedLayer, prices: np.ndarray) -> tuple[Any, Any, bool]:
    idx = self.grid.indices(prices.reshape(-1))
    on_grid = (idx >= 0) & (idx < self.grid.size)
    return idx, on_grid, bool(on_grid.all())


def deposit(
    self: EstimatedLayer,
    target: np.ndarray,
    at: tuple[Any, Any, bool],
    usd: np.ndarray,
    counts_off_grid: bool,
) -> None:
    idx, on_grid, all_on_grid = at
    amounts = usd.reshape(-1)
    if all_on_grid:
        if counts_off_grid:
            self.state.off_grid_usd += 0.0
        np.add.at(target, idx, amounts)
        return
    if counts_off_grid:
        self.state.off_grid_usd += float(amounts[~on_grid].sum())
    np.add.at(target, idx[on_grid], amounts[on_grid])


def consume(self: EstimatedLayer, low: float, high: float) -> Consumed:
    levels = self.state.levels
    lo_i = min(max(self.grid.index(low), 0), self.grid.size)
    hi_i = min(max(self.grid.index(high) + 1, 0), self.grid.size)
    long_idx = np.flatnonzero(levels[LONG, lo_i:]) + lo_i
    short_idx = np.flatnonzero(levels[SHORT, :hi_i])
    if long_idx.size == 0 and short_idx.size == 0:
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


# --- sweeps --------------------------------------------------------------------------------


def credit(self: SweepDetector, tracker: ClusterTracker, consumed: Consumed) -> None:
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
    self: SweepDetector,
    ts: np.ndarray,
    prices: np.ndarray,
    tracker: ClusterTracker,
    _low: float | None = None,
    _high: float | None = None,
) -> tuple[list[SweepResult], list[str]]:
    swept: list[str] = []
    before = self.state.last_price or float(prices[0])
    for c in list(tracker.clusters):
        lo, hi = tracker.band(c)
        if c.side == LONG:
            inside, crossed = prices < hi, prices < lo
        else:
            inside, crossed = prices > lo, prices > hi
        j = int(np.argmax(inside)) if inside.any() else -1
        first_inside = int(ts[j]) if j >= 0 else 0
        if j >= 0 and not c.touched_at:
            c.price_before = float(prices[j - 1]) if j > 0 else before
        if crossed.any():
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
        c.touched_at = (c.touched_at or first_inside) if inside[-1] else 0
    self.state.last_price = float(prices[-1])
    return self._resolve(int(ts[-1]), final=False), swept


# --- asset engine --------------------------------------------------------------------------


def process_run(self: AssetEngine, events: list[Any]) -> list[Output]:
    first = events[0]
    if isinstance(first, Liquidation):
        liq, dead = old_liquidation_columns(events)
        self.dead_letters += dead
        return chunked(self, liq, liq.ts, self._liquidations)
    if isinstance(first, MarkPrice):
        marks, dead = old_mark_columns(events)
        self.dead_letters += dead
        return chunked(self, marks, marks.ts, marks_handler(self))
    oi, dead = old_oi_columns(events)
    self.dead_letters += dead
    return chunked(self, oi, oi.ts, open_interest_handler(self))


def chunked(self: AssetEngine, cols: Any, ts: Any, handle: Callable[[Any], Any]) -> list[Output]:
    out: list[Output] = []
    n, start = int(ts.size), 0
    while start < n:
        out += self.advance(int(ts[start]))
        end = int(np.searchsorted(ts, self.state.next_tick, side="left"))
        end = max(end, start + 1)
        out += handle(cols if start == 0 and end == n else sliced(cols, start, end))
        self.state.clock = max(self.state.clock, int(ts[end - 1]))
        start = end
    return out


def marks_handler(self: AssetEngine) -> Callable[[MarkColumns], list[Output]]:
    def handle(c: MarkColumns) -> list[Output]:
        keys, _, latest = group_by_instrument(c.events)
        for j, (venue, instrument) in enumerate(keys):
            e = latest[j]
            self.market.seen(venue, instrument, e.ts_event, None)
            self.market.mark(venue, instrument, e.mark_price, e.funding_rate, e.ts_event)
        self.market.set_price(float(c.price[-1]), int(c.ts[-1]))
        self._place_grid(float(c.price[-1]))
        now = int(c.ts[-1])
        consumed = self.estimated.consume(float(c.price.min()), float(c.price.max()))
        self.sweeps.credit(self.tracker, consumed)
        results, swept = self.sweeps.on_prices(c.ts, c.price, self.tracker)
        out: list[Output] = []
        for res in results:
            out += self.report.sweep(res)
        out += self._approaches(now, self.price, swept)
        self.cascade.on_prices(c.ts, c.price)
        for ev in self.cascade.evaluate(now, self.price):
            out += self.report.cascade(ev)
        return out

    return handle


def net_of_forced(
    self: AssetEngine, key: tuple[str, str], changes: OIChanges, pos: int
) -> list[Output]:
    venue, instrument = key
    seen = self.state.forced_since_oi.pop(f"{venue}:{instrument}", None)
    deltas = changes.delta_usd
    raw = float(deltas[pos])
    deltas[pos] = raw + (seen.total_usd if seen is not None else 0.0)
    hidden = self._hidden(venue, seen, raw)
    if hidden is None:
        return []
    side, usd = hidden
    deltas[pos] = float(deltas[pos]) + usd
    return self._implied(int(changes.ts[pos]), side, usd, venue)


def open_interest_handler(self: AssetEngine) -> Callable[[OIColumns], list[Output]]:
    def handle(c: OIColumns) -> list[Output]:
        if self.price > 0:
            price = np.full(c.ts.size, self.price)
        else:
            price = np.divide(c.usd, c.base, out=np.zeros_like(c.usd), where=c.base > 0)
        keys, codes, latest = group_by_instrument(c.events)
        for j, (venue, instrument) in enumerate(keys):
            self.market.seen(venue, instrument, latest[j].ts_event, None)
        usable = price > 0
        if not usable.all():
            codes, price = codes[usable], price[usable]
            c = sliced_mask(c, usable)
        known = self.estimated.state.instruments
        for venue, instrument in keys:
            name = f"{venue}:{instrument}"
            if name not in known:
                self.state.forced_since_oi.pop(name, None)
        changes, firsts = self.estimated.observe(
            keys, codes, ts=c.ts, base=c.base, usd=c.usd, price=price
        )
        out: list[Output] = []
        for k, pos in firsts.items():
            out += net_of_forced(self, keys[k], changes, pos)
        if changes.ts.size:
            if not self.grid.placed:
                self._place_grid(float(changes.price[-1]))
            self.estimated.apply(changes)
        return out

    return handle


# --- end to end ------------------------------------------------------------------------------


def patch_old_forms(patch: pytest.MonkeyPatch) -> None:
    patch.setattr(AssetEngine, "process_run", process_run)
    patch.setattr(EstimatedLayer, "observe", observe)
    patch.setattr(EstimatedLayer, "apply", apply)
    patch.setattr(EstimatedLayer, "_add_levels", add_levels)
    patch.setattr(EstimatedLayer, "consume", consume)
    patch.setattr(SweepDetector, "credit", credit)
    patch.setattr(SweepDetector, "on_prices", on_prices)


def compare_with_old_forms(envelopes: list[bytes], patch: pytest.MonkeyPatch) -> Run:
    fast = run_engine(envelopes)
    with patch.context() as old:
        patch_old_forms(old)
        reference_run = run_engine(envelopes)
    assert_same_run(fast, reference_run)
    return fast


@pytest.mark.parametrize(("span_ms", "events", "sweeps"), [(2_000, 40_000, 4), (250, 15_000, 1)])
def test_worker_mix_is_bit_identical_to_the_old_forms(
    span_ms: int, events: int, sweeps: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = compare_with_old_forms(stress_blobs(events, span_ms), monkeypatch)[0]
    # sweeps come from the mark-price path and cascades after it: the comparison covers them
    assert sum(b'"type":"sweep"' in o for o in outputs) >= sweeps
    assert sum(b'"type":"cascade"' in o for o in outputs) >= 5
    assert len(outputs) >= 30


def spoiled(envelopes: list[Envelope]) -> list[bytes]:
    """The load with bad events mixed in, and one asset's open interest before its first mark
    price (priced by the OI itself, some rows with no usable price)."""
    first_asset = envelopes[0].asset
    out: list[bytes] = []
    for i, env in enumerate(envelopes):
        events: list[Any] = list(env.events)
        if env.asset == first_asset and isinstance(events[0], MarkPrice) and i < 80:
            continue
        j = i % len(events)
        e = events[j]
        if isinstance(e, MarkPrice) and i % 5 == 1:
            events[j] = msgspec.structs.replace(e, mark_price=0.0)
        elif isinstance(e, OpenInterest) and i % 3 == 1:
            events[j] = msgspec.structs.replace(e, oi_base=0.0 if i % 2 else -1.0)
        elif isinstance(e, Liquidation) and i % 4 == 1:
            events[j] = msgspec.structs.replace(e, notional_usd=-5.0, ts_event=0)
        out.append(codec.encode(msgspec.structs.replace(env, events=events)))
    return out


def test_bad_events_and_oi_before_marks_match_the_old_forms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    envelopes = stress_envelopes(StressLoad(events=20_000, assets=3, envelope_span_ms=500))
    fast = compare_with_old_forms(spoiled(envelopes), monkeypatch)
    assert len(fast[2]) >= 20  # dead letters of every kind were compared
    assert len(fast[0]) >= 10


# --- helpers against the numpy expressions they replace --------------------------------------


def placed_grid(price: float = PRICE) -> PriceGrid:
    grid = PriceGrid(GridConfig())
    grid.centre_on(price)
    return grid


history_runs = st.lists(
    st.lists(
        st.tuples(st.integers(0, 240_000), st.floats(1.0, 2.0, allow_nan=False)),
        min_size=1,
        max_size=30,
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(runs=history_runs, window_s=st.sampled_from([1, 5, 60]))
def test_reference_rows_match_the_numpy_lookups(
    runs: list[list[tuple[int, float]]], window_s: int
) -> None:
    cfg = ModelConfig(direction_window_s=window_s)
    fast, old = (EstimatedLayer(cfg, placed_grid()) for _ in range(2))
    for run in runs:
        ts = [T0 + t for t, _ in run]
        px = [p for _, p in run]
        got = fast._reference_rows(ts, px)
        want = reference(old, np.array(ts, dtype=np.int64), np.array(px), np.array(px))
        assert got == want.tolist()
        assert fast.state.prices == old.state.prices
        assert all(type(t) is int and type(p) is float for t, p in fast.state.prices)
    assert fast.state.prices  # the history holds at least the newest point


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 25),
    seed=st.integers(0, 2**32 - 1),
    off_grid=st.booleans(),
    strided=st.booleans(),
)
def test_add_levels_matches_side_by_side(n: int, seed: int, off_grid: bool, strided: bool) -> None:
    rng = np.random.default_rng(seed)
    ts = np.sort(T0 + rng.integers(0, 1000, n))
    scale = rng.choice([1.0, 1.0, 3.0, 0.3], n) if off_grid else np.ones(n)
    delta = rng.lognormal(13, 1.0, n) * rng.choice([1.0, 1.0, -1.0], n)
    delta[0] = abs(delta[0])  # apply only adds levels when something rose
    changes = OIChanges(
        ts=ts,
        price=PRICE * scale * rng.uniform(0.99, 1.01, n),
        delta_usd=delta,
        long_share=rng.uniform(0.3, 0.7, n),
        total_before_usd=np.full(n, 1e9),
    )
    after = rng.uniform(0.5, 1.0, n)
    layers = [EstimatedLayer(ModelConfig(), placed_grid()) for _ in range(2)]
    for layer in layers:
        if strided:  # not contiguous: no flat view
            layer.state.levels = np.zeros((2, 2 * layer.grid.size))[:, ::2]
            layer.state.fresh = np.zeros((2, 2 * layer.grid.size))[:, ::2]
        layer.state.levels[:] = 1e4
        layer.state.fresh[:] = 1e3
    adds = changes.delta_usd > 0
    layers[0]._add_levels(changes, adds, after, int(ts.max()))
    add_levels(layers[1], changes, adds, after, int(ts.max()))
    fast, ref = layers[0].state, layers[1].state
    assert fast.levels.tobytes() == ref.levels.tobytes()
    assert fast.fresh.tobytes() == ref.fresh.tobytes()
    assert (fast.added_usd, fast.off_grid_usd) == (ref.added_usd, ref.off_grid_usd)
    assert fast.added_usd > 0  # something was deposited (on the grid or off it)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), low=st.floats(0.9, 1.1), span=st.floats(0.0, 0.05))
def test_consume_matches_flatnonzero(seed: int, low: float, span: float) -> None:
    rng = np.random.default_rng(seed)
    layers = [EstimatedLayer(ModelConfig(), placed_grid()) for _ in range(2)]
    levels = rng.lognormal(10, 2, layers[0].state.levels.shape)
    levels[rng.random(levels.shape) < 0.8] = 0.0
    for layer in layers:
        layer.state.levels[:] = levels
        layer.state.fresh[:] = levels / 3
    got = layers[0].consume(PRICE * low, PRICE * low * (1 + span))
    want = consume(layers[1], PRICE * low, PRICE * low * (1 + span))
    for a, b in zip(
        (got.long_idx, got.long_usd, got.short_idx, got.short_usd),
        (want.long_idx, want.long_usd, want.short_idx, want.short_usd),
        strict=True,
    ):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert layers[0].state.levels.tobytes() == layers[1].state.levels.tobytes()
    assert layers[0].state.consumed_usd == layers[1].state.consumed_usd


KEYS = [("bybit", "BTC-USDT-PERP"), ("okx", "BTC-USD-INVERSE"), ("binance", "BTC-USDT-PERP")]
KEYS += [(f"v{n}", "BTC-USD-INVERSE" if n % 2 else "BTC-USDC-PERP") for n in range(5)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), runs=st.integers(1, 5), window_s=st.sampled_from([0, 60]))
def test_observe_rows_match_the_old_observe(seed: int, runs: int, window_s: int) -> None:
    rng = np.random.default_rng(seed)
    cfg = ModelConfig(direction_window_s=window_s)
    fast, old = (EstimatedLayer(cfg, placed_grid()) for _ in range(2))
    for r in range(runs):
        n = int(rng.integers(1, 25))
        codes = rng.integers(0, len(KEYS), n)
        ts = np.sort(T0 + r * 700 + rng.integers(-300, 1000, n))
        price = PRICE * (1 + rng.normal(0, 5e-4, n))
        base = rng.uniform(1e3, 2e3, n)
        usd = base * price * rng.uniform(0.99, 1.01, n)
        got = fast.observe(KEYS, codes, ts=ts, base=base, usd=usd, price=price)
        want = observe(old, KEYS, codes, ts=ts, base=base, usd=usd, price=price)
        for f in fields(OIChanges):
            a, b = getattr(got[0], f.name), getattr(want[0], f.name)
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
        assert got[1] == want[1]
        assert msgspec.msgpack.encode(fast.state.instruments) == msgspec.msgpack.encode(
            old.state.instruments
        )
        assert fast.state.total_oi_usd == old.state.total_oi_usd
        assert fast.state.prices == old.state.prices


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 20))
def test_rows_priced_by_oi_match_the_masked_columns(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, n)
    ts = np.sort(T0 + rng.integers(0, 1000, n))
    base = rng.uniform(1.0, 2.0, n) * (rng.random(n) < 0.7)
    usd = rng.uniform(1e5, 2e5, n) * (rng.random(n) < 0.8)
    rows = Rows.priced_by_oi(codes.tolist(), ts, base, usd)
    price = np.divide(usd, base, out=np.zeros_like(usd), where=base > 0)
    usable = price > 0
    assert rows.code == codes[usable].tolist()
    assert rows.ts == ts[usable].tolist()
    assert rows.base == base[usable].tolist()
    assert rows.usd == usd[usable].tolist()
    assert rows.price == price[usable].tolist()


# --- sweeps ----------------------------------------------------------------------------------

cluster_specs = st.lists(
    st.tuples(
        st.sampled_from([LONG, SHORT]),
        st.integers(-40, 40),  # lo, buckets from price
        st.integers(0, 5),  # width
        st.sampled_from([None, Intensity.DIM, Intensity.MEDIUM, Intensity.BRIGHT]),
        st.sampled_from([0, T0 - 5_000]),  # touched_at
        st.booleans(),  # ever_touched
    ),
    max_size=6,
)


def tracked(grid: PriceGrid, specs: list[tuple[Any, ...]]) -> ClusterTracker:
    tracker = ClusterTracker(ClusterConfig(), grid)
    at = grid.global_index(PRICE)
    for n, (side, lo, width, tier, touched, ever) in enumerate(specs):
        tracker.state.clusters.append(
            TrackedCluster(
                cid=f"c{n}",
                side=side,
                lo=at + lo,
                hi=at + lo + width,
                notional=1e6,
                peak_z=2.0,
                tier=tier,
                first_seen=T0 - 60_000,
                last_seen=T0 - 1_000,
                touched_at=touched,
                price_before=PRICE * 1.001 if touched else 0.0,
                ever_touched=ever,
                consumed=5e5,
            )
        )
    return tracker


@settings(max_examples=200, deadline=None)
@given(
    specs=cluster_specs,
    steps=st.lists(st.floats(-0.004, 0.004), min_size=1, max_size=60),
    nan_at=st.one_of(st.none(), st.integers(0, 59)),
    last_price=st.sampled_from([0.0, PRICE]),
)
def test_on_prices_matches_the_full_masks(
    specs: list[tuple[Any, ...]], steps: list[float], nan_at: int | None, last_price: float
) -> None:
    prices = PRICE * np.cumprod(1.0 + np.array(steps, dtype=np.float64), dtype=np.float64)
    if nan_at is not None and nan_at < prices.size:
        prices[nan_at] = math.nan
    ts = T0 + 250 * np.arange(prices.size, dtype=np.int64)
    grid = placed_grid()
    results = []
    for form in ("fast", "old"):
        tracker = tracked(grid, specs)
        detector = SweepDetector(SweepConfig(), grid.bucket_bp)
        detector.state.last_price = last_price
        if form == "fast":
            res, swept = detector.on_prices(ts, prices, tracker)
        else:
            res, swept = on_prices(detector, ts, prices, tracker)
        results.append(
            (
                [(r.confirmed, r.ts, r.realized_usd, msgspec.msgpack.encode(r.sweep)) for r in res],
                swept,
                msgspec.msgpack.encode(tracker.state),
                msgspec.msgpack.encode(detector.state),
            )
        )
    assert results[0] == results[1]


@settings(max_examples=100, deadline=None)
@given(
    specs=cluster_specs,
    steps=st.lists(st.floats(-0.004, 0.004), min_size=1, max_size=40),
)
def test_on_prices_with_given_extremes_matches(
    specs: list[tuple[Any, ...]], steps: list[float]
) -> None:
    """_marks passes the extremes it computed for consume: the same as computing them here."""
    prices = PRICE * np.cumprod(1.0 + np.array(steps, dtype=np.float64), dtype=np.float64)
    ts = T0 + 250 * np.arange(prices.size, dtype=np.int64)
    grid = placed_grid()
    states = []
    for given_extremes in (True, False):
        tracker = tracked(grid, specs)
        detector = SweepDetector(SweepConfig(), grid.bucket_bp)
        low, high = (float(prices.min()), float(prices.max())) if given_extremes else (None, None)
        _, swept = detector.on_prices(ts, prices, tracker, low, high)
        states.append((swept, msgspec.msgpack.encode(tracker.state)))
    assert states[0] == states[1]


def test_credit_without_consumed_levels_changes_nothing() -> None:
    grid = placed_grid()
    specs = [(LONG, -5, 2, Intensity.BRIGHT, 0, False), (SHORT, 5, 2, None, 0, False)]
    trackers = [tracked(grid, specs) for _ in range(2)]
    empty = Consumed(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros(0))
    SweepDetector(SweepConfig(), grid.bucket_bp).credit(trackers[0], empty)
    credit(SweepDetector(SweepConfig(), grid.bucket_bp), trackers[1], empty)
    assert trackers[0].state == trackers[1].state
    at = grid.global_index(PRICE)
    some = Consumed(np.array([at - 4]), np.array([7.0]), np.array([at + 6]), np.array([3.0]))
    SweepDetector(SweepConfig(), grid.bucket_bp).credit(trackers[0], some)
    credit(SweepDetector(SweepConfig(), grid.bucket_bp), trackers[1], some)
    assert trackers[0].state == trackers[1].state
    assert [c.consumed for c in trackers[0].clusters] == [5e5 + 7.0, 5e5 + 3.0]


# --- market context and inputs ---------------------------------------------------------------

VENUES = [Venue.BINANCE, Venue.BYBIT, Venue.OKX, Venue.DERIBIT]
INSTRUMENTS = ["BTC-USDT-PERP", "BTC-USD-INVERSE", "ETH-USDT-PERP"]
odd_floats = st.sampled_from([1.5, 60_000.0, 0.0, -1.0, math.nan, math.inf])


def a_mark(venue: Venue, instrument: str, ts: int, price: float, funding: float | None) -> Any:
    return MarkPrice(
        venue=venue,
        symbol="X",
        instrument=instrument,
        asset="BTC",
        mark_price=price,
        funding_rate=funding,
        ts_event=ts,
        ts_recv=ts,
        event_id=f"m{ts}",
    )


marks = st.lists(
    st.builds(
        a_mark,
        st.sampled_from(VENUES),
        st.sampled_from(INSTRUMENTS),
        st.integers(-5, 50).map(lambda t: T0 + 100 * t if t > 0 else t),
        odd_floats,
        st.sampled_from([None, 1e-4, -2e-4]),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(runs=st.lists(marks, min_size=1, max_size=4))
def test_batched_market_bookkeeping_matches_seen_and_mark(runs: list[list[Any]]) -> None:
    fast, old = MarketContext(StalenessConfig()), MarketContext(StalenessConfig())
    oi_fast, oi_old = MarketContext(StalenessConfig()), MarketContext(StalenessConfig())
    for run in runs:
        fast.marks_seen(latest_by_instrument(run).values())
        keys, _, latest = group_by_instrument(run)
        for (venue, instrument), e in zip(keys, latest, strict=True):
            old.seen(venue, instrument, e.ts_event, None)
            old.mark(venue, instrument, e.mark_price, e.funding_rate, e.ts_event)
            oi_old.seen(venue, instrument, e.ts_event, None)
        oi_fast.seen_all(keys, [e.ts_event for e in latest])
    assert msgspec.msgpack.encode(fast.state) == msgspec.msgpack.encode(old.state)
    assert msgspec.msgpack.encode(oi_fast.state) == msgspec.msgpack.encode(oi_old.state)


@settings(max_examples=150, deadline=None)
@given(run=marks)
def test_instrument_codes_match_the_old_grouping(run: list[Any]) -> None:
    keys, codes, latest = instrument_codes(run)
    old_keys, old_codes, old_latest = group_by_instrument(run)
    assert keys == old_keys and all(type(v) is str for v, _ in keys)
    assert codes == old_codes.tolist()
    assert all(a is b for a, b in zip(latest, old_latest, strict=True))
    assert list(latest_by_instrument(run)) == old_keys


def an_oi(venue: Venue, ts: int, base: float, usd: float) -> Any:
    return OpenInterest(
        venue=venue,
        symbol="X",
        instrument="BTC-USDT-PERP",
        asset="BTC",
        oi_base=base,
        oi_usd=usd,
        ts_event=ts,
        ts_recv=ts,
        event_id=f"o{ts}",
    )


def a_liquidation(venue: Venue, ts: int, price: float, fill: float | None, usd: float) -> Any:
    return Liquidation(
        venue=venue,
        symbol="X",
        instrument="BTC-USDT-PERP",
        asset="BTC",
        side=Side.SHORT if ts % 2 else Side.LONG,
        price=price,
        avg_price=fill,
        qty=1.0,
        notional_usd=usd,
        completeness=Completeness.SAMPLED if ts % 3 else Completeness.COMPLETE,
        ts_event=ts,
        ts_recv=ts,
        event_id=f"l{ts}",
    )


times = st.integers(-2, 30).map(lambda t: T0 + 100 * t if t > 0 else t)
ois = st.lists(
    st.builds(an_oi, st.sampled_from(VENUES), times, odd_floats, odd_floats),
    min_size=1,
    max_size=30,
)
liquidations = st.lists(
    st.builds(
        a_liquidation,
        st.sampled_from(VENUES),
        times,
        odd_floats,
        st.one_of(st.none(), odd_floats),
        odd_floats,
    ),
    min_size=1,
    max_size=30,
)


def same_columns(got: Any, want: Any) -> None:
    assert type(got) is type(want)
    for f in fields(got):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(a, list):
            assert len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
        else:
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@settings(max_examples=150, deadline=None)
@given(mark_run=marks, oi_run=ois, liq_run=liquidations)
def test_columns_match_the_old_ordering(
    mark_run: list[Any], oi_run: list[Any], liq_run: list[Any]
) -> None:
    for fast, old_form, run in (
        (mark_columns, old_mark_columns, mark_run),
        (oi_columns, old_oi_columns, oi_run),
        (liquidation_columns, old_liquidation_columns, liq_run),
    ):
        got, got_dead = fast(run)
        want, want_dead = old_form(run)
        same_columns(got, want)
        assert [codec.encode(d) for d in got_dead] == [codec.encode(d) for d in want_dead]


@settings(max_examples=100, deadline=None)
@given(run=marks, a=st.integers(0, 40), b=st.integers(0, 40))
def test_sliced_matches_dataclass_replace(run: list[Any], a: int, b: int) -> None:
    cols, _ = mark_columns(run)
    same_columns(fast_sliced(cols, a, b), sliced(cols, a, b))
    oi_cols = OIColumns(events=run, ts=np.arange(len(run)), base=np.ones(len(run)), usd=np.ones(0))
    same_columns(fast_sliced(oi_cols, a, b), sliced(oi_cols, a, b))


def old_stale_after_ms(self: MarketContext, venue: str) -> float:
    cadence = self.cfg.cadence_ms.get(venue, self.cfg.default_cadence_ms)
    return max(self.cfg.stale_factor * cadence, self.cfg.min_stale_ms)


def old_stale_changes(self: MarketContext, now: int) -> tuple[list[str], list[str]]:
    venues = self.state.venues
    stale = sorted(
        v for v, info in venues.items() if now - info.last_ts > old_stale_after_ms(self, v)
    )
    before = set(self.state.stale)
    self.state.stale = stale
    return [v for v in stale if v not in before], [v for v in before if v not in stale]


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from([*map(str, VENUES), "other"]), st.integers(0, 120)),
        min_size=1,
        max_size=30,
    )
)
def test_stale_changes_match_the_uncached_form(steps: list[tuple[str, int]]) -> None:
    cfg = StalenessConfig(cadence_ms={"okx": 5_000})
    fast, old = MarketContext(cfg), MarketContext(cfg)
    for n, (venue, seconds) in enumerate(steps):
        now = T0 + 10_000 * n
        for market in (fast, old):
            market.seen(venue, "BTC-USDT-PERP", now - 1000 * seconds, None)
        got, want = fast.stale_changes(now), old_stale_changes(old, now)
        assert got[0] == want[0] and sorted(got[1]) == sorted(want[1])
        assert fast.state.stale == old.state.stale
        for v in fast.state.venues:
            assert fast.stale_after_ms(v) == old_stale_after_ms(old, v)
    assert msgspec.msgpack.encode(fast.state) == msgspec.msgpack.encode(old.state)


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 20),
    removal=st.sampled_from(["layer", "open_interest"]),
)
def test_apply_matches_the_old_form(seed: int, n: int, removal: str) -> None:
    rng = np.random.default_rng(seed)
    changes = OIChanges(
        ts=np.sort(T0 + rng.integers(0, 1000, n)),
        price=PRICE * rng.uniform(0.99, 1.01, n),
        delta_usd=rng.lognormal(13, 1.0, n) * rng.choice([1.0, -1.0, -1.0], n),
        long_share=rng.uniform(0.3, 0.7, n),
        total_before_usd=rng.uniform(5e8, 1e9, n),
    )
    layers = [EstimatedLayer(ModelConfig(removal=removal), placed_grid()) for _ in range(2)]
    for layer in layers:
        layer.state.decayed_at = T0 - 5_000
        layer.state.levels[:, 600:800] = 1e5
        layer.state.fresh[:, 600:800] = 1e4
    layers[0].apply(changes)
    apply(layers[1], changes)
    fast, ref = (msgspec.msgpack.encode(layer.state, enc_hook=_arrays) for layer in layers)
    assert fast == ref
    assert layers[0].state.removed_usd > 0 or not (changes.delta_usd < 0).any()


def _arrays(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tobytes()
    raise NotImplementedError(type(obj))


@pytest.mark.parametrize("side", [LONG, SHORT])
def test_on_prices_skips_far_clusters_only_when_the_edges_agree(side: int) -> None:
    """Runs whose extreme sits exactly on (or one ulp around) a bucket edge near the band:
    the index test that skips far clusters decides as the edge comparisons do."""
    grid = placed_grid()
    at = grid.global_index(PRICE)
    specs = [(side, 0, 1, Intensity.BRIGHT, T0 - 5_000, True)]
    compared = 0
    for bucket in range(-4, 6):
        edge = math.exp((at + bucket) * grid.step)
        for price in (math.nextafter(edge, 0.0), edge, math.nextafter(edge, math.inf)):
            prices = np.array([price, price], dtype=np.float64)
            ts = np.array([T0, T0 + 250], dtype=np.int64)
            states = []
            for form in ("fast", "old"):
                tracker = tracked(grid, specs)
                detector = SweepDetector(SweepConfig(), grid.bucket_bp)
                if form == "fast":
                    _, swept = detector.on_prices(ts, prices, tracker)
                else:
                    _, swept = on_prices(detector, ts, prices, tracker)
                states.append((swept, msgspec.msgpack.encode(tracker.state)))
            assert states[0] == states[1]
            compared += 1
    assert compared == 30


def test_open_interest_without_a_usable_price_before_marks_is_skipped() -> None:
    """Before the first mark price, OI rows that imply no price (base 0) leave nothing to
    observe: the list path returns no changes (the column path raised on numpy's argmax of
    an empty selection)."""
    engine = Engine(EngineConfig.default())
    events = [an_oi(Venue.BYBIT, T0 + 100 * i, 0.0, 1e6) for i in range(3)]
    assert engine.process(events) == []
    assert engine.drain_dead_letters() == []  # valid rows, just unpriced: not dead letters
    estimated = engine.asset_engine("BTC").estimated.state
    assert estimated.instruments == {} and estimated.total_oi_usd == 0.0
    engine.process([an_oi(Venue.BYBIT, T0 + 1_000, 2.0, 1e6)])  # a usable row: the baseline
    assert list(estimated.instruments) == ["bybit:BTC-USDT-PERP"]
