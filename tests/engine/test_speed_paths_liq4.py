"""The liquidation path's fast forms give bit-identical results to the code they replaced.

- ``CascadeDetector.add`` fills the ring with every bin of a chunk first and sums all the
  chunk's windows at once (``_add_batched``); the reference adds and evaluates bin by bin.
- ``bin_parts`` groups a chunk in one Python pass (sums by ``pairwise_sum``); the reference
  is ``bin_groups`` / ``one_bin_groups`` / ``bin_runs`` (NumPy).
- ``evaluate`` sums its window with ``take`` + ``add.accumulate``; the reference reduces the
  fancy-indexed ``notional[:, win]``.
- ``_clear_ring`` / ``_advance_clock`` clear slices; the reference clears index arrays.
- ``on_prices`` marks the last price per bin without ``np.append``.
- ``RealizedLayer.add`` sums the touched buckets' span (one bincount per call) and caches
  decay factors; the reference bincounts the whole grid per timeframe.
- ``tally_run`` keeps one dict entry per (instrument, side).

The end-to-end checks run the engine on the worker benchmark's stress load (frozen, seeded)
with every reference patched in and compare outputs and snapshots byte for byte. Helpers that
replace a NumPy expression get a hypothesis property test against it.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.engine import implied as implied_mod
from processors.engine.cascade import (
    BinSide,
    CascadeDetector,
    CascadeEvent,
    bin_parts,
)
from processors.engine.config import CascadeConfig, RealizedConfig
from processors.engine.grid import shift_arrays
from processors.engine.implied import tally_run
from processors.engine.realized import FLUSH_USD, RealizedLayer
from processors.engine.state import ForcedTally, RealizedState
from processors.engine.sums import pairwise_sum
from tests.engine.references import bin_groups, bin_runs, one_bin_groups
from tests.engine.replay import assert_same_run, run_engine, stress_blobs

# swaps engine functions for their references: runs on the Python sources
pytestmark = pytest.mark.interpreted

T0 = 1_760_130_000_000

# --- references: the replaced code, as it was ---------------------------------------------


def reference_add(
    self: CascadeDetector,
    ts: np.ndarray,
    side: np.ndarray,
    notional: np.ndarray,
    venue_bits: np.ndarray,
    price_now: float,
) -> list[CascadeEvent]:
    out: list[CascadeEvent] = []
    if not ts.size:
        return out
    bins = ts // self.cfg.bin_ms
    if bins[0] == bins[-1]:
        groups = one_bin_groups(side, notional, ts, venue_bits)
        runs = [(int(bins[0]), 0, int(ts.size))]
    else:
        groups = bin_groups(bins, side, notional, ts, venue_bits)
        runs = bin_runs(bins)
    times, usd = ts.tolist(), notional.tolist()
    g = 0
    for b, start, end in runs:
        n_groups = 1 + (g + 1 < len(groups) and groups[g + 1].start == start)
        part, g = groups[g : g + n_groups], g + n_groups
        if b <= self.state.head_bin - self.ring + self.w_bins:
            continue
        self._advance(max(b, self.state.head_bin))
        reference_add_bin(self, b, part, times[start], usd[start:end])
        out += self.evaluate(times[end - 1], price_now)
    return out


def reference_add_bin(
    self: CascadeDetector, b: int, groups: list[BinSide], first_ts: int, usd: list[float]
) -> None:
    s = self.state
    slot = b % self.ring
    for grp in groups:
        k = grp.side
        had = s.count[k, slot] > 0
        s.notional[k, slot] += grp.usd
        s.count[k, slot] += grp.events
        s.biggest[k, slot] = max(s.biggest[k, slot], grp.biggest)
        s.last_liq[k] = max(s.last_liq[k], grp.last)
        s.first_ts[k, slot] = min(grp.first, int(s.first_ts[k, slot])) if had else grp.first
        s.venues[k, slot] |= grp.bits
        run = s.runs[k]
        if run is not None:
            run.total += grp.usd
            run.events += grp.events
            run.venues_mask |= grp.bits
            run.last_event = max(run.last_event, grp.last)
    sec = first_ts // 1000
    if sec > s.head_sec - self.sec_ring:
        i = sec % self.sec_ring
        acc = float(s.per_second[i])
        for x in usd:
            acc += x
        s.per_second[i] = acc


def reference_advance(self: CascadeDetector, b: int) -> None:
    s = self.state
    if b > s.head_bin:
        first = max(s.head_bin + 1, b - self.ring + 1)
        new = np.arange(first, b + 1) % self.ring
        for arr in (s.notional, s.count, s.biggest, s.first_ts, s.venues):
            arr[:, new] = 0
        s.price[new] = np.nan
        s.head_bin = b
    sec = (b * self.cfg.bin_ms) // 1000
    if sec > s.head_sec:
        new_s = np.arange(max(s.head_sec + 1, sec - self.sec_ring + 1), sec + 1)
        s.per_second[new_s % self.sec_ring] = 0.0
        s.head_sec = sec


def reference_evaluate(self: CascadeDetector, now: int, price_now: float) -> list[CascadeEvent]:
    s = self.state
    if s.head_bin < 0:
        return []
    win = self._wins[s.head_bin % self.ring]
    in_window = s.notional[:, win]
    side_sum: list[float] = np.add.reduce(in_window, axis=1).tolist()
    total = side_sum[0] + side_sum[1]
    out: list[CascadeEvent] = []
    for k in (0, 1):
        run = s.runs[k]
        if run is None:
            started = self._maybe_start(
                k, win, side_sum=side_sum, total=total, now=now, price_now=price_now
            )
            out += [started] if started else []
        else:
            out += self._follow(run, float(side_sum[k]), self._rate(k), now, price_now)
    return out


def reference_on_prices(self: CascadeDetector, ts: np.ndarray, prices: np.ndarray) -> None:
    bins = ts // self.cfg.bin_ms
    self._advance(max(int(bins[-1]), self.state.head_bin))
    last_in_bin = np.append(bins[1:] != bins[:-1], True)
    recent = last_in_bin & (bins > self.state.head_bin - self.ring)
    self.state.price[bins[recent] % self.ring] = prices[recent]


def reference_decay_to(self: RealizedLayer, now: int) -> None:
    s = self.state
    dt = now - s.decayed_at
    if dt <= 0:
        return
    factors = np.exp(-dt / self.tau_ms)
    s.decayed *= factors[:, None, None]
    s.totals *= factors[:, None]
    s.decayed_at = now


def reference_realized_add(
    self: RealizedLayer, ts: np.ndarray, idx: np.ndarray, side: np.ndarray, notional: np.ndarray
) -> None:
    s = self.state
    reference_decay_to(self, int(ts.max()))
    age = (s.decayed_at - ts).astype(np.float64)
    weights = notional[None, :] * np.exp(-age[None, :] / self.tau_ms[:, None])
    for tf in range(len(self.tau_ms)):
        s.totals[tf] += np.bincount(side, weights=weights[tf], minlength=2)
    s.tumbling_totals += np.bincount(side, weights=notional, minlength=2)
    on_grid = (idx >= 0) & (idx < self.size)
    flat = side[on_grid] * self.size + idx[on_grid]
    cells = 2 * self.size
    for tf in range(len(self.tau_ms)):
        s.decayed[tf].reshape(-1)[:] += np.bincount(
            flat, weights=weights[tf][on_grid], minlength=cells
        )
    s.tumbling.reshape(-1)[:] += np.bincount(flat, weights=notional[on_grid], minlength=cells)


def reference_tally_run(
    tallies: list[ForcedTally], codes: Any, ts: np.ndarray, side: np.ndarray, usd: Any
) -> None:
    sums: dict[int, float] = {}
    seconds: dict[int, list[int]] = {}
    groups = (np.asarray(codes, dtype=np.int64) * 2 + side).tolist()
    for g, sec, x in zip(groups, (ts // 1000).tolist(), usd.tolist(), strict=True):
        sums[g] = sums.get(g, 0.0) + x
        seen = seconds.get(g)
        if seen is None:
            seconds[g] = [1, sec, sec]
        elif sec != seen[2]:
            seen[0] += 1
            seen[2] = sec
    for g in sorted(seconds):
        distinct, first, last = seconds[g]
        t, k = tallies[g // 2], g % 2
        if first == t.last_second[k]:
            distinct -= 1
        t.seconds[k] += distinct
        t.last_second[k] = last
        t.usd[k] += sums[g]


def patch_references(patch: pytest.MonkeyPatch) -> None:
    patch.setattr(CascadeDetector, "add", reference_add)
    patch.setattr(CascadeDetector, "_advance", reference_advance)
    patch.setattr(CascadeDetector, "evaluate", reference_evaluate)
    patch.setattr(CascadeDetector, "on_prices", reference_on_prices)
    patch.setattr(RealizedLayer, "decay_to", reference_decay_to)
    patch.setattr(RealizedLayer, "add", reference_realized_add)
    patch.setattr(implied_mod, "tally_run", reference_tally_run)
    patch.setattr("processors.engine.asset.tally_run", reference_tally_run)


# --- end to end -----------------------------------------------------------------------------


@pytest.mark.parametrize(("span_ms", "events"), [(2_000, 40_000), (250, 15_000)])
def test_liquidation_path_is_bit_identical_to_the_reference_end_to_end(
    span_ms: int, events: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    envelopes = stress_blobs(events, span_ms)
    calls = {"batched": 0}
    batched = CascadeDetector._add_batched

    def counting(self: CascadeDetector, *args: Any) -> list[CascadeEvent]:
        calls["batched"] += 1
        return batched(self, *args)

    with monkeypatch.context() as patch:
        patch.setattr(CascadeDetector, "_add_batched", counting)
        fast = run_engine(envelopes)
    with monkeypatch.context() as patch:
        patch_references(patch)
        reference = run_engine(envelopes)
    assert_same_run(fast, reference)
    assert sum(b'"type":"cascade"' in o for o in fast[0]) >= 5
    assert calls["batched"] >= 100  # the batched path is what ran


# --- the cascade detector, chunk by chunk ----------------------------------------------------


def stream(seed: int) -> list[tuple[int, int, float, int]]:
    """Bursts of liquidations, each mostly one side, often late, with quiet gaps between
    them (so cascades start, escalate and end) and gaps between bins."""
    rnd = random.Random(seed)
    out, t = [], T0
    for burst in range(40):
        major = burst % 2
        for _ in range(rnd.randrange(20, 120)):
            t += rnd.choice([0, 3, 20, 60, 150, 450])
            ts = t - rnd.randrange(0, 4_000) if rnd.random() < 0.25 else t
            side = major if rnd.random() < 0.85 else 1 - major
            out.append((ts, side, rnd.lognormvariate(11, 1.0), 1 << rnd.randrange(5)))
        t += rnd.choice([15_000, 45_000])
    return out


def feed(
    det: CascadeDetector, rows: list[tuple[int, int, float, int]], seed: int
) -> list[CascadeEvent]:
    """Time-sorted chunks of random sizes, with mark prices that run ahead of the
    liquidations (so chunks start at or before the head), moving against the side that is
    liquidated most, and ticks now and then."""
    rnd = random.Random(seed)
    out: list[CascadeEvent] = []
    i, price = 0, 100_000.0
    while i < len(rows):
        size = rnd.choice([1, 3, 8, 20, 60])
        part = sorted(rows[i : i + size], key=lambda r: r[0])
        i += size
        shorts = sum(r[1] for r in part)
        price *= 1.0007 if 2 * shorts > len(part) else 0.9993
        ahead = part[-1][0] + rnd.choice([-800, 0, 300, 900])
        det.on_prices(np.array([ahead - 50, ahead]), np.array([price * 1.0001, price]))
        ts = np.array([r[0] for r in part], dtype=np.int64)
        side, usd, bits = (np.array([r[k] for r in part]) for k in (1, 2, 3))
        out += det.add(ts, side.astype(np.int64), usd, bits.astype(np.int64), price)
        if rnd.random() < 0.3:
            out += det.tick(ahead // 1000 * 1000 + 1000, price)
    return out


def state_of(det: CascadeDetector) -> bytes:
    return msgspec.msgpack.encode(
        {f: msgspec.to_builtins(getattr(det.state, f), enc_hook=np.ndarray.tolist)
         for f in det.state.__struct_fields__}
    )  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batched_add_matches_bin_by_bin_with_late_data_and_restarts(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks that start behind the head (late data), restarts of the bin-by-bin path when
    a cascade may start mid-chunk, and cascades starting inside a batch all match."""
    rows = stream(seed)
    cfg = CascadeConfig(floor_usd=400_000.0, min_move_pct=0.01, quiet_s=3)
    resumed: list[int] = []
    add_bins = CascadeDetector._add_bins

    def spy(self: CascadeDetector, c: Any, first: int, price_now: float) -> list[CascadeEvent]:
        resumed.append(first)
        return add_bins(self, c, first, price_now)

    with monkeypatch.context() as patch:
        patch.setattr(CascadeDetector, "_add_bins", spy)
        fast = CascadeDetector(cfg, "BTC")
        fast_events = feed(fast, rows, seed)
    with monkeypatch.context() as patch:
        patch_references(patch)
        ref = CascadeDetector(cfg, "BTC")
        ref_events = feed(ref, rows, seed)
    as_list = [(e.phase, e.ts, e.price_now, msgspec.to_builtins(e.run)) for e in fast_events]
    assert as_list == [(e.phase, e.ts, e.price_now, msgspec.to_builtins(e.run)) for e in ref_events]
    assert state_of(fast) == state_of(ref)
    assert sum(e.phase == "started" for e in fast_events) >= 3
    assert any(first > 0 for first in resumed), "a batch should hand over mid-chunk"
    assert 0 in resumed, "some chunks should be too spread (or late) for a batch"


# --- helpers against the NumPy expressions they replace ---------------------------------------

finite_usd = st.floats(min_value=1e-3, max_value=1e12, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(finite_usd, max_size=300))
def test_pairwise_sum_is_numpy_sum_bit_for_bit(values: list[float]) -> None:
    assert pairwise_sum(values) == float(np.array(values, dtype=np.float64).sum())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=40))
def test_pairwise_sum_keeps_signs_and_zeros_as_numpy(values: list[float]) -> None:
    got, want = pairwise_sum(values), float(np.array(values, dtype=np.float64).sum())
    assert (got, np.signbit(got)) == (want, np.signbit(want))


def reference_parts(
    ts: np.ndarray, side: np.ndarray, usd: np.ndarray, bits: np.ndarray, bin_ms: int
) -> tuple[list[tuple[int, int, int]], list[list[BinSide]]]:
    bins = ts // bin_ms
    if bins[0] == bins[-1]:
        groups = one_bin_groups(side, usd, ts, bits)
        runs = [(int(bins[0]), 0, int(ts.size))]
    else:
        groups = bin_groups(bins, side, usd, ts, bits)
        runs = bin_runs(bins)
    parts, g = [], 0
    for _, start, _ in runs:
        n = 1 + (g + 1 < len(groups) and groups[g + 1].start == start)
        parts.append(groups[g : g + n])
        g += n
    return runs, parts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 2_500), st.integers(0, 1), finite_usd, st.integers(0, 6)),
        min_size=1,
        max_size=120,
    ),
    st.sampled_from([50, 100, 250, 1000]),
)
def test_bin_parts_match_the_numpy_grouping(
    rows: list[tuple[int, int, float, int]], bin_ms: int
) -> None:
    rows = sorted(rows, key=lambda r: r[0])
    ts = np.array([T0 + r[0] for r in rows], dtype=np.int64)
    side = np.array([r[1] for r in rows], dtype=np.int64)
    usd = np.array([r[2] for r in rows])
    bits = np.array([1 << r[3] for r in rows], dtype=np.int64)
    got = bin_parts(ts.tolist(), side.tolist(), usd.tolist(), bits.tolist(), bin_ms)
    assert got == reference_parts(ts, side, usd, bits, bin_ms)


def test_bin_parts_sum_big_bins_pairwise() -> None:
    """Bins of 8 or more rows per side: NumPy's 8-way partial sums, not a plain loop."""
    rng = np.random.default_rng(11)
    n = 1_500
    ts = np.sort(T0 + rng.integers(0, 300, n))
    side, usd = rng.integers(0, 2, n), rng.lognormal(12, 2.5, n)
    bits = 1 << rng.integers(0, 6, n)
    got = bin_parts(ts.tolist(), side.tolist(), usd.tolist(), bits.tolist(), 100)
    assert got == reference_parts(ts, side, usd, bits, 100)
    assert max(g.events for part in got[1] for g in part) > 128


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(-5, 400))
def test_evaluate_window_sum_is_the_reduce_of_the_gathered_window(seed: int, head: int) -> None:
    detector = CascadeDetector(CascadeConfig(), "BTC")
    rng = np.random.default_rng(seed)
    s = detector.state
    s.notional[...] = rng.lognormal(10.0, 3.0, s.notional.shape)
    s.notional[rng.random(s.notional.shape) < 0.3] = 0.0
    s.head_bin = max(head, 0)
    win = detector._wins[s.head_bin % detector.ring]
    gathered = np.add.reduce(s.notional[:, win], axis=1).tolist()
    sums, rates = detector._window_sums([s.head_bin], [s.head_bin], None)
    accumulated = np.add.accumulate(np.take(s.notional, win, axis=1), axis=1)[:, -1].tolist()
    assert accumulated == gathered
    assert sums[0] == gathered
    assert rates[0] == [detector._rate(0), detector._rate(1)]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 20), st.integers(0, 8))
def test_window_sums_of_a_chunk_are_the_per_bin_window_sums(
    seed: int, n_bins: int, n_late: int
) -> None:
    """All windows of a chunk summed at once equal each bin's window summed after its own
    step, late bins (at or before the head) included."""
    rng = np.random.default_rng(seed)
    detector = CascadeDetector(CascadeConfig(), "BTC")
    s = detector.state
    s.notional[...] = rng.lognormal(10.0, 3.0, s.notional.shape)
    head = 10_000
    s.head_bin = head
    late = sorted(rng.choice(np.arange(head - 60, head + 1), min(n_late, n_bins), replace=False))
    new = head + np.cumsum(rng.integers(1, 4, n_bins - len(late)))
    bins = [int(b) for b in late] + [int(b) for b in new]
    assert detector._batchable(bins[0], bins[-1])  # the chunks the batched path takes
    usd = rng.lognormal(10.0, 2.0, (len(bins), 2)).tolist()
    before = s.notional.copy()
    expected_sums, expected_rates = [], []
    for b, (u0, u1) in zip(bins, usd, strict=True):
        s.head_bin = max(s.head_bin, b)  # no clearing: the values only need to be the same
        s.notional[:, b % detector.ring] += (u0, u1)
        win = detector._wins[s.head_bin % detector.ring]
        expected_sums.append(np.add.reduce(s.notional[:, win], axis=1).tolist())
        expected_rates.append([detector._rate(0), detector._rate(1)])
    heads = [max(head, b) for b in bins]
    got = detector._window_sums(bins, heads, before if late else None)
    assert got == (expected_sums, expected_rates)


# --- realized layer and tallies -------------------------------------------------------------


def realized_state(rng: np.random.Generator, size: int) -> RealizedState:
    decayed = rng.lognormal(3.0, 2.0, (3, 2, size))
    decayed[:, :, : size // 3] = 0.0  # a restored layer whose used buckets are in the middle
    decayed[:, :, size // 2 :] = 0.0
    decayed[rng.random(decayed.shape) < 0.5] = 0.0
    return RealizedState(
        decayed=decayed,
        totals=rng.lognormal(8.0, 1.0, (3, 2)),
        tumbling=np.zeros((2, size)),
        tumbling_totals=np.zeros(2),
        window_start=T0,
        decayed_at=T0,
    )


@pytest.mark.parametrize("seed", range(4))
def test_realized_layer_matches_whole_grid_bincounts_and_decay(seed: int) -> None:
    """Adds (some off the grid), decays (of the used buckets only), grid shifts and flushes
    leave the same bytes as the whole-grid reference."""
    rng = np.random.default_rng(seed)
    size = 1402
    state = realized_state(rng, size)
    fast = RealizedLayer(RealizedConfig(), size, copy_state(state))  # as restored
    ref = RealizedLayer(RealizedConfig(), size, copy_state(state))
    t = T0
    for step in range(80):
        n = int(rng.integers(1, 60))
        t += int(rng.choice([0, 1000, 1000, 250, 7_000]))
        ts = np.sort(t - rng.integers(0, 3_000, n))
        centre = int(rng.integers(-30, size + 30))
        idx = centre + rng.integers(-8, 9, n)  # some off the grid at the edges
        side, usd = rng.integers(0, 2, n), rng.lognormal(10.0, 1.5, n)
        fast.add(ts, idx, side, usd)
        reference_realized_add(ref, ts, idx, side, usd)
        if step % 7 == 0:
            fast.decay_to(t + 1000)
            reference_decay_to(ref, t + 1000)
        if step % 11 == 5:
            delta = int(rng.integers(-400, 400))
            shift_arrays(delta, *fast.arrays())
            shift_arrays(delta, ref.state.decayed, ref.state.tumbling)
        if step % 13 == 6:
            fast.flush_small()
            ref.state.decayed[ref.state.decayed < FLUSH_USD] = 0.0
        for f in ("decayed", "totals", "tumbling", "tumbling_totals"):
            assert getattr(fast.state, f).tobytes() == getattr(ref.state, f).tobytes()
        assert fast.state.decayed_at == ref.state.decayed_at
    assert fast._hi - fast._lo < size  # the used part was tracked, not the whole grid


def copy_state(state: RealizedState) -> RealizedState:
    return msgspec.structs.replace(
        state,
        decayed=state.decayed.copy(),
        totals=state.totals.copy(),
        tumbling=state.tumbling.copy(),
        tumbling_totals=state.tumbling_totals.copy(),
    )


def test_tally_run_on_lists_and_arrays_matches_the_previous_form() -> None:
    rng = np.random.default_rng(5)
    mine_list = [ForcedTally() for _ in range(5)]
    mine_array = [ForcedTally() for _ in range(5)]
    ref = [ForcedTally() for _ in range(5)]
    start = T0
    for _ in range(40):
        n = int(rng.integers(1, 70))
        ts = np.sort(start + rng.integers(0, 2_500, n))
        start = int(ts[-1])
        codes, side, usd = rng.integers(0, 5, n), rng.integers(0, 2, n), rng.lognormal(9, 1.4, n)
        tally_run(mine_list, codes.tolist(), ts, side, usd)
        tally_run(mine_array, codes, ts, side, usd)
        reference_tally_run(ref, codes, ts, side, usd)
    as_builtins = [msgspec.to_builtins(t) for t in ref]
    assert [msgspec.to_builtins(t) for t in mine_list] == as_builtins
    assert [msgspec.to_builtins(t) for t in mine_array] == as_builtins
    assert sum(t.seconds[0] + t.seconds[1] for t in ref) > 40
