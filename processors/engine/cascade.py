"""Cascade detection: sustained one-sided forced liquidation with price moving with it.

A cascade starts when, over a sliding window W of realized liquidations,

* total notional ≥ ``max(floor, k × (median + MAD))`` of the window notional over the last hour,
* one side has ≥ ``dominance`` of it, from at least ``min_events`` liquidations, the largest of
  which is ≤ ``max_single_share`` of that side (one whale is not a cascade), and
* price moved at least ``min_move_pct`` in the forcing direction over the window (longs
  liquidated ⇒ price down).

It escalates each time the side's window notional reaches ``escalate_factor`` × the level at the
last phase, and ends after ``quiet_s`` with the side's window notional below ``exit_ratio`` ×
the threshold it started with (the gap between the entry and exit levels is the hysteresis).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import msgspec
import numpy as np

from liqwatch.schema import CascadePhase, Venue
from processors.engine.common import FloatArray, IntArray
from processors.engine.config import CascadeConfig
from processors.engine.state import CascadeRun, CascadeState
from processors.engine.sums import pairwise_sum

VENUES = list(Venue)
SPARE_BINS = 64  # ring slack beyond the window: chunks never span more than one second
FEW_SLOTS = 4  # a ring advance this short clears slot by slot (cheaper than index arrays)


@dataclass(frozen=True)
class CascadeEvent:
    phase: CascadePhase
    run: CascadeRun  # a copy: the live run keeps changing after the event
    ts: int
    price_now: float


def _event(phase: CascadePhase, run: CascadeRun, ts: int, price_now: float) -> CascadeEvent:
    return CascadeEvent(phase, msgspec.structs.replace(run), ts, price_now)


@functools.cache
def venue_bit(venue: str) -> int:
    try:
        return 1 << VENUES.index(Venue(venue))
    except ValueError:
        return 1 << len(VENUES)


def venue_names(mask: int) -> list[str]:
    names = [v.value for i, v in enumerate(VENUES) if mask & (1 << i)]
    return names + (["other"] if mask & (1 << len(VENUES)) else [])


class BinSide(NamedTuple):
    """One bin's liquidations of one side, aggregated."""

    start: int  # first row of the bin (rows are time-sorted)
    side: int
    usd: float
    events: int
    biggest: float
    first: int
    last: int
    bits: int


class Chunk(NamedTuple):
    """A time-sorted chunk of liquidations cut into its bins."""

    runs: list[tuple[int, int, int]]  # (bin, first row, end row)
    parts: list[list[BinSide]]  # each bin's groups, side 0 first
    times: list[int]
    usd: list[float]


def bin_parts(
    times: list[int], sides: list[int], usd: list[float], bits: list[int], bin_ms: int
) -> tuple[list[tuple[int, int, int]], list[list[BinSide]]]:
    """(bin, first row, end row) of each run of equal bins of a time-sorted chunk, and each
    bin's per-side aggregates (side 0 first), bit for bit as the NumPy grouping it replaced
    (kept as the tests' reference in tests/engine/references.py)."""
    runs: list[tuple[int, int, int]] = []
    parts: list[list[BinSide]] = []
    current, start = -1, 0
    # the current bin, per side: its notionals (None: no row yet), first and last time, bits
    values: list[list[float] | None] = [None, None]
    first, last, ors = [0, 0], [0, 0], [0, 0]
    for i, t in enumerate(times):
        b = t // bin_ms
        if b != current:
            if i:
                runs.append((current, start, i))
                parts.append(_bin_sides(start, values, first, last, ors))
            current, start, values = b, i, [None, None]
        k = sides[i]
        mine = values[k]
        if mine is None:
            values[k] = [usd[i]]
            first[k], ors[k] = t, bits[i]
        else:
            mine.append(usd[i])
            ors[k] |= bits[i]
        last[k] = t
    if times:
        runs.append((current, start, len(times)))
        parts.append(_bin_sides(start, values, first, last, ors))
    return runs, parts


def _bin_sides(
    start: int, values: list[list[float] | None], first: list[int], last: list[int], ors: list[int]
) -> list[BinSide]:
    out: list[BinSide] = []
    for k, u in enumerate(values):
        if u is not None:
            out.append(
                BinSide(start, k, pairwise_sum(u), len(u), max(u), first[k], last[k], ors[k])
            )
    return out


class CascadeDetector:
    def __init__(self, cfg: CascadeConfig, asset: str, state: CascadeState | None = None) -> None:
        self.cfg = cfg
        self.asset = asset
        self.w_bins = cfg.window_s * 1000 // cfg.bin_ms
        self.ring = self.w_bins + SPARE_BINS
        self.sec_ring = cfg.baseline_s + cfg.window_s
        self.state = state or self._empty()
        # ring slots of the window, the last second and the bins before the window, for each
        # head slot: the same index arrays the evaluation used to build on every call
        heads = np.arange(self.ring)[:, None]
        self._wins = (heads + np.arange(1 - self.w_bins, 1)) % self.ring
        self._window_offsets = np.arange(1 - self.w_bins, 1)[:, None]
        self._last_bins = 1000 // cfg.bin_ms
        self._lasts = (heads + np.arange(1 - 1000 // cfg.bin_ms, 1)) % self.ring
        self._olders = (heads + np.arange(-self.w_bins, -self.ring, -1)) % self.ring

    def _empty(self) -> CascadeState:
        r = self.ring
        return CascadeState(
            notional=np.zeros((2, r)),
            count=np.zeros((2, r), dtype=np.int64),
            biggest=np.zeros((2, r)),
            first_ts=np.zeros((2, r), dtype=np.int64),
            venues=np.zeros((2, r), dtype=np.int64),
            price=np.full(r, np.nan),
            head_bin=-1,
            per_second=np.zeros(self.sec_ring),
            head_sec=-1,
        )

    # --- input ------------------------------------------------------------------------------

    def add(
        self,
        ts: IntArray,
        side: IntArray,
        notional: FloatArray,
        venue_bits: IntArray,
        price_now: float,
    ) -> list[CascadeEvent]:
        """Adds one time-sorted chunk of liquidations, evaluating after each bin."""
        out: list[CascadeEvent] = []
        if not ts.size:
            return out
        times, usd = ts.tolist(), notional.tolist()
        runs, parts = bin_parts(times, side.tolist(), usd, venue_bits.tolist(), self.cfg.bin_ms)
        chunk = Chunk(runs, parts, times, usd)
        if self._batchable(runs[0][0], runs[-1][0]):
            return self._add_batched(chunk, price_now)
        return self._add_bins(chunk, 0, price_now)

    def _add_bins(self, c: Chunk, first: int, price_now: float) -> list[CascadeEvent]:
        """Adds the chunk's bins from ``first`` on one at a time, evaluating after each."""
        out: list[CascadeEvent] = []
        for (b, start, end), part in zip(c.runs[first:], c.parts[first:], strict=True):
            if b <= self.state.head_bin - self.ring + self.w_bins:
                continue  # too late to matter for any window still open
            self._advance(max(b, self.state.head_bin))
            self._add_bin(b, part, c.times[start], c.usd[start:end])
            out += self.evaluate(c.times[end - 1], price_now)
        return out

    def _batchable(self, first: int, last: int) -> bool:
        """Whether ``_add_batched`` gives the per-bin results: no bin is too late, and no
        window of the chunk reaches a slot that a later bin of the chunk clears."""
        head = self.state.head_bin
        return (
            first > head - self.ring + self.w_bins
            and max(head, last) - max(head, first) < self.ring - self.w_bins
            and self._last_bins <= self.w_bins
        )

    def _add_batched(self, c: Chunk, price_now: float) -> list[CascadeEvent]:
        """``_add_bins`` with one window summation for all bins of the chunk.

        The ring takes every bin first; evaluations then read bin j's window in the final
        ring, where only slots of later bins that lie at or before the head (late data) differ
        from what bin j saw: their earlier values are taken from a copy. Prices, per-second
        sums, runs and the head move bin by bin as in ``_add_bins``. A cascade that might
        start at a bin whose window later bins change restores the ring to that bin and
        continues bin by bin, as starting reads more of the ring.
        """
        s = self.state
        head0, m = s.head_bin, len(c.runs)
        bins = [b for b, _, _ in c.runs]
        heads = [max(head0, b) for b in bins]
        before = [arr.copy() for arr in self._ring_arrays()] if bins[0] <= head0 else None
        self._fill_ring(head0, heads[-1], bins, c.parts)
        side_sums, rates = self._window_sums(bins, heads, before[0] if before else None)
        out: list[CascadeEvent] = []
        for j, (_, start, end) in enumerate(c.runs):
            side_sum = side_sums[j]
            late_after = before is not None and j + 1 < m and bins[j + 1] <= heads[j]
            if late_after and self._may_start_any(side_sum):
                assert before is not None
                for arr, old in zip(self._ring_arrays(), before, strict=True):
                    arr[...] = old
                self._fill_ring(head0, heads[j - 1] if j else head0, bins[:j], c.parts[:j])
                return out + self._add_bins(c, j, price_now)
            if heads[j] > s.head_bin:
                self._advance_clock(heads[j])
            self._add_to_runs(c.parts[j])
            self._add_per_second(c.times[start] // 1000, c.usd[start:end])
            out += self._judge(heads[j], side_sum, rates[j], c.times[end - 1], price_now)
        return out

    def _ring_arrays(self) -> tuple[np.ndarray, ...]:
        s = self.state
        return (s.notional, s.count, s.biggest, s.first_ts, s.venues)

    def _fill_ring(
        self, head: int, new_head: int, bins: list[int], parts: list[list[BinSide]]
    ) -> None:
        """Clears the ring slots of bins after ``head`` up to ``new_head`` and adds the bins."""
        self._clear_ring(head, new_head)
        for b, part in zip(bins, parts, strict=True):
            if b > head:
                self._set_cleared(b % self.ring, part)
            else:
                self._add_to_ring(b % self.ring, part)

    def _window_sums(
        self, bins: list[int], heads: list[int], before: FloatArray | None
    ) -> tuple[list[list[float]], list[list[float]]]:
        """Per bin j of a chunk: the side sums and last-second rates of its window (headed by
        ``heads[j]``), bit for bit as ``evaluate`` and ``_rate_in`` sum one window.

        ``evaluate`` gathers a (side, slot) array laid out slot-major and reduces it along
        the slots, which NumPy does slot after slot; reducing the outer axis of a (slot, bin,
        side) array adds in that order too. ``_rate_in`` sums a 1-D row pairwise, as NumPy
        sums every contiguous row along its inner axis.
        """
        # (position in the window, bin), from -w_bins + 1: computed, as a table per head
        # would be large; "wrap" takes a negative position from the end of the ring
        slots = np.array([h % self.ring for h in heads]) + self._window_offsets
        values = np.take(self.state.notional.T, slots, axis=0, mode="wrap")  # (slot, bin, side)
        if before is not None:
            # a late bin's slot holds, for the bins before it, its value from before
            start = heads[0] - self.w_bins + 1  # the late bins' window: the head's
            for j, b in enumerate(bins[1:], 1):
                if b > heads[0]:
                    break
                if b >= start:
                    values[b - start, :j] = before[:, b % self.ring]
        side_sums: list[list[float]] = np.add.reduce(values, axis=0).tolist()
        tails = np.ascontiguousarray(values[-self._last_bins :].transpose(1, 2, 0))
        rates: list[list[float]] = np.add.reduce(tails, axis=2).tolist()
        return side_sums, rates

    def _add_bin(self, b: int, groups: list[BinSide], first_ts: int, usd: list[float]) -> None:
        self._add_to_ring(b % self.ring, groups)
        self._add_to_runs(groups)
        # a bin never spans two seconds (bin_ms divides 1000): one per-second slot
        self._add_per_second(first_ts // 1000, usd)

    def _add_to_ring(self, slot: int, groups: list[BinSide]) -> None:
        s = self.state
        for grp in groups:
            k = grp.side
            had = s.count[k, slot] > 0
            s.notional[k, slot] += grp.usd
            s.count[k, slot] += grp.events
            s.biggest[k, slot] = max(s.biggest[k, slot], grp.biggest)
            s.first_ts[k, slot] = min(grp.first, int(s.first_ts[k, slot])) if had else grp.first
            s.venues[k, slot] |= grp.bits

    def _set_cleared(self, slot: int, groups: list[BinSide]) -> None:
        """``_add_to_ring`` for a slot just cleared: each value is what adding to zeros
        gives, written without reading the zeros back."""
        s = self.state
        for grp in groups:
            k = grp.side
            s.notional[k, slot] = 0.0 + grp.usd
            s.count[k, slot] = grp.events
            s.biggest[k, slot] = max(0.0, grp.biggest)
            s.first_ts[k, slot] = grp.first
            s.venues[k, slot] = grp.bits

    def _add_to_runs(self, groups: list[BinSide]) -> None:
        s = self.state
        for grp in groups:
            k = grp.side
            s.last_liq[k] = max(s.last_liq[k], grp.last)
            run = s.runs[k]
            if run is not None:
                run.total += grp.usd
                run.events += grp.events
                run.venues_mask |= grp.bits
                run.last_event = max(run.last_event, grp.last)

    def _add_per_second(self, sec: int, usd: list[float]) -> None:
        """Adds to one second's slot, in arrival order as np.add.at would."""
        s = self.state
        if sec > s.head_sec - self.sec_ring:
            i = sec % self.sec_ring
            acc = float(s.per_second[i])
            for x in usd:
                acc += x
            s.per_second[i] = acc

    def add_implied(
        self, ts: int, side: int, usd: float, bit: int, price_now: float
    ) -> list[CascadeEvent]:
        """Adds notional a sampled feed did not show (see implied.py): no event count, and
        not a single liquidation for the whale test."""
        s = self.state
        b = ts // self.cfg.bin_ms
        if b <= s.head_bin - self.ring + self.w_bins:
            return []
        self._advance(max(b, s.head_bin))
        slot = b % self.ring
        s.notional[side, slot] += usd
        s.venues[side, slot] |= bit
        if s.count[side, slot] == 0:
            s.first_ts[side, slot] = ts
        s.per_second[(ts // 1000) % self.sec_ring] += usd
        run = s.runs[side]
        if run is not None:
            run.total += usd
            run.implied += usd
        return self.evaluate(ts, price_now)

    def on_prices(self, ts: IntArray, prices: FloatArray) -> None:
        """Records the last mark price of every bin in a time-sorted run."""
        bins = ts // self.cfg.bin_ms
        first, last = int(bins[0]), int(bins[-1])
        self._advance(max(last, self.state.head_bin))
        oldest = self.state.head_bin - self.ring  # bins up to here have no slot any more
        if first == last:
            if last > oldest:
                self.state.price[last % self.ring] = prices[-1]
            return
        last_in_bin = np.empty(bins.size, dtype=bool)
        last_in_bin[-1] = True
        np.not_equal(bins[1:], bins[:-1], out=last_in_bin[:-1])
        if first <= oldest:
            last_in_bin &= bins > oldest
        self.state.price[bins[last_in_bin] % self.ring] = prices[last_in_bin]

    def _advance(self, b: int) -> None:
        """Moves the ring head to bin ``b``, clearing the bins that are reused."""
        self._clear_ring(self.state.head_bin, b)
        self._advance_clock(b)

    def _clear_ring(self, head: int, b: int) -> None:
        """Clears the (side, bin) arrays' slots of the bins after ``head`` up to ``b``."""
        if b > head:
            first = max(head + 1, b - self.ring + 1)
            if b - first < FEW_SLOTS:
                for slot in range(first % self.ring, first % self.ring + b - first + 1):
                    self._clear_slot(slot % self.ring)
            else:
                for lo, hi in self._slot_ranges(first, b):
                    for arr in self._ring_arrays():
                        arr[:, lo:hi] = 0

    def _advance_clock(self, b: int) -> None:
        """Moves the head to bin ``b``: clears the reused price and per-second slots."""
        s = self.state
        if b > s.head_bin:
            first = max(s.head_bin + 1, b - self.ring + 1)
            if b - first < FEW_SLOTS:
                for slot in range(first, b + 1):
                    s.price[slot % self.ring] = np.nan
            else:
                for lo, hi in self._slot_ranges(first, b):
                    s.price[lo:hi] = np.nan
            s.head_bin = b
        sec = (b * self.cfg.bin_ms) // 1000
        if sec > s.head_sec:
            if sec == s.head_sec + 1:
                s.per_second[sec % self.sec_ring] = 0.0
            else:
                new_s = np.arange(max(s.head_sec + 1, sec - self.sec_ring + 1), sec + 1)
                s.per_second[new_s % self.sec_ring] = 0.0
            s.head_sec = sec

    def _slot_ranges(self, first: int, last: int) -> list[tuple[int, int]]:
        """The ring slots of bins ``first``..``last`` (fewer than ``ring``) as slices."""
        lo, hi = first % self.ring, last % self.ring + 1
        return [(lo, hi)] if lo < hi else [(lo, self.ring), (0, hi)]

    def _clear_slot(self, slot: int) -> None:
        for arr in self._ring_arrays():
            arr[0, slot] = 0
            arr[1, slot] = 0

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(self, now: int, price_now: float) -> list[CascadeEvent]:
        s = self.state
        if s.head_bin < 0:
            return []
        win = self._wins[s.head_bin % self.ring]
        in_window = np.take(s.notional, win, axis=1)
        # the window summed slot after slot, as reducing the gathered ``notional[:, win]``
        # (slot-major in memory) does; accumulating states that order
        side_sum: list[float] = np.add.accumulate(in_window, axis=1)[:, -1].tolist()
        runs = s.runs
        rates = [
            self._rate_in(in_window, 0) if runs[0] is not None else 0.0,
            self._rate_in(in_window, 1) if runs[1] is not None else 0.0,
        ]
        return self._judge(s.head_bin, side_sum, rates, now, price_now)

    def _judge(
        self, head: int, side_sum: list[float], rates: list[float], now: int, price_now: float
    ) -> list[CascadeEvent]:
        """Starts or follows each side's cascade from the window headed by bin ``head``: its
        side sums and last-second rates."""
        runs = self.state.runs
        total = side_sum[0] + side_sum[1]  # as side_sum.sum() adds two
        out: list[CascadeEvent] = []
        for k in (0, 1):
            run = runs[k]
            if run is not None:
                out += self._follow(run, float(side_sum[k]), rates[k], now, price_now)
            elif self._passes_share(side_sum[k], total):  # else _maybe_start returns None
                win = self._wins[head % self.ring]
                started = self._maybe_start(
                    k, win, side_sum=side_sum, total=total, now=now, price_now=price_now
                )
                out += [started] if started else []
        return out

    def _may_start_any(self, side_sum: list[float]) -> bool:
        """Whether a side without a cascade passes ``_maybe_start``'s first test."""
        total = side_sum[0] + side_sum[1]
        return any(
            self.state.runs[k] is None and self._passes_share(side_sum[k], total) for k in (0, 1)
        )

    def _passes_share(self, mine: float, total: float) -> bool:
        cfg = self.cfg
        return not (total < cfg.floor_usd or mine < cfg.dominance * total)

    def _maybe_start(
        self,
        k: int,
        win: IntArray,
        *,
        side_sum: list[float],
        total: float,
        now: int,
        price_now: float,
    ) -> CascadeEvent | None:
        cfg, s = self.cfg, self.state
        mine = float(side_sum[k])
        if not self._passes_share(mine, total):
            return None
        if s.baseline_sec == s.head_sec and total < max(cfg.floor_usd, cfg.k * s.baseline_value):
            # the threshold test below would fail: with this second's baseline already known,
            # the tests in between (pure) need not run
            return None
        if int(s.count[k, win].sum()) < cfg.min_events:
            return None
        if float(s.biggest[k, win].max()) > cfg.max_single_share * mine:
            return None
        price_then = self._price_before_window()
        if not price_then or not price_now or not self._moved(k, price_then, price_now):
            return None
        threshold = max(cfg.floor_usd, cfg.k * self._baseline())
        if total < threshold:
            return None
        active = win[s.count[k, win] > 0]
        started_at = int(s.first_ts[k, active].min())
        run = CascadeRun(
            cascade_id=f"cascade-{self.asset}-{'long' if k == 0 else 'short'}-{started_at}",
            side=k,
            started_at=started_at,
            detected_at=now,
            threshold=threshold,
            level=mine,
            total=mine,
            events=int(s.count[k, win].sum()),
            venues_mask=int(np.bitwise_or.reduce(s.venues[k, win])),
            price_start=price_then,
            peak_rate=self._rate(k),
            last_active=now,
            window=mine,
            last_event=s.last_liq[k],
        )
        s.runs[k] = run
        return _event(CascadePhase.STARTED, run, now, price_now)

    def _moved(self, k: int, then: float, now: float) -> bool:
        move = (now - then) / then * 100.0
        return move <= -self.cfg.min_move_pct if k == 0 else move >= self.cfg.min_move_pct

    def _follow(
        self, run: CascadeRun, mine: float, rate: float, now: int, price_now: float
    ) -> list[CascadeEvent]:
        run.window = mine
        run.peak_rate = max(run.peak_rate, rate)
        if mine >= self.cfg.exit_ratio * run.threshold:
            run.last_active = max(run.last_active, now)
        if mine >= self.cfg.escalate_factor * run.level:
            run.level = mine
            run.phase_seq += 1
            return [_event(CascadePhase.ESCALATED, run, now, price_now)]
        return []

    def tick(self, now: int, price_now: float) -> list[CascadeEvent]:
        """Time-driven: moves the window to ``now`` and ends cascades that went quiet."""
        self._advance(max(now // self.cfg.bin_ms, self.state.head_bin))
        out = self.evaluate(now, price_now) if any(self.state.runs) else []
        for k, run in enumerate(self.state.runs):
            if run is not None and now - run.last_active >= self.cfg.quiet_s * 1000:
                run.phase_seq += 1
                self.state.runs[k] = None
                out.append(_event(CascadePhase.ENDED, run, now, price_now))
        return out

    # --- helpers ----------------------------------------------------------------------------

    def _rate_in(self, in_window: FloatArray, k: int) -> float:
        """``_rate(k)`` from the window's values (``notional[:, win]``)."""
        if self._last_bins > self.w_bins:
            return self._rate(k)
        # the last second is the window's tail: the same values in the same order as ``_rate``
        # gathers them, summed as one contiguous row (a 2-D reduce may add them in another
        # order), so bit for bit the same sum without a gather
        return float(np.add.reduce(in_window[k, -self._last_bins :]))

    def _rate(self, k: int) -> float:
        """USD/s over the last second for side k."""
        s = self.state
        return float(s.notional[k, self._lasts[s.head_bin % self.ring]].sum())

    def _price_before_window(self) -> float:
        """The last known price at or before the window's start (NaN-free), 0 if unknown."""
        s = self.state
        prices = s.price[self._olders[s.head_bin % self.ring]]
        known = np.flatnonzero(~np.isnan(prices))
        if known.size:
            return float(prices[known[0]])
        prices = s.price[self._wins[s.head_bin % self.ring]]
        known = np.flatnonzero(~np.isnan(prices))
        return float(prices[known[0]]) if known.size else 0.0

    def _baseline(self) -> float:
        """Median + MAD of the window notional over the last hour (whole seconds only)."""
        s = self.state
        if s.baseline_sec == s.head_sec:
            return s.baseline_value
        w = self.cfg.window_s
        secs = np.arange(s.head_sec - self.sec_ring + 1, s.head_sec) % self.sec_ring
        per_sec = s.per_second[secs]
        sums = np.convolve(per_sec, np.ones(w), mode="valid")
        med = float(np.median(sums))
        mad = float(np.median(np.abs(sums - med)))
        s.baseline_sec, s.baseline_value = s.head_sec, med + mad
        return s.baseline_value

    def active(self) -> list[CascadeRun]:
        return [r for r in self.state.runs if r is not None]
