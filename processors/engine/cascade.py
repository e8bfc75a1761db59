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

from dataclasses import dataclass

import msgspec
import numpy as np

from liqwatch.schema import CascadePhase, Venue
from processors.engine.common import FloatArray, IntArray
from processors.engine.config import CascadeConfig

VENUES = list(Venue)
SPARE_BINS = 64  # ring slack beyond the window: chunks never span more than one second


class CascadeRun(msgspec.Struct, kw_only=True):
    cascade_id: str
    side: int
    started_at: int
    detected_at: int
    threshold: float
    level: float  # side window notional at the last phase change
    total: float
    events: int
    venues_mask: int
    price_start: float
    peak_rate: float
    last_active: int
    window: float
    phase_seq: int = 0
    implied: float = 0.0  # notional implied by open interest on sampled venues
    last_event: int = 0  # time of the cascade side's latest liquidation


class CascadeState(msgspec.Struct, kw_only=True):
    notional: np.ndarray  # (side, bin ring)
    count: np.ndarray  # (side, bin ring)
    biggest: np.ndarray  # (side, bin ring) largest single liquidation
    first_ts: np.ndarray  # (side, bin ring) earliest liquidation time in the bin
    venues: np.ndarray  # (side, bin ring) bit mask of venues
    price: np.ndarray  # (bin ring) last mark price in the bin, NaN if none
    head_bin: int
    per_second: np.ndarray  # (second ring) total notional, both sides, for the baseline
    head_sec: int
    baseline_sec: int = -1
    baseline_value: float = 0.0
    runs: list[CascadeRun | None] = msgspec.field(default_factory=lambda: [None, None])
    last_liq: list[int] = msgspec.field(default_factory=lambda: [0, 0])  # latest per side


@dataclass(frozen=True)
class CascadeEvent:
    phase: CascadePhase
    run: CascadeRun  # a copy: the live run keeps changing after the event
    ts: int
    price_now: float


def _event(phase: CascadePhase, run: CascadeRun, ts: int, price_now: float) -> CascadeEvent:
    return CascadeEvent(phase, msgspec.structs.replace(run), ts, price_now)


def venue_bit(venue: str) -> int:
    try:
        return 1 << VENUES.index(Venue(venue))
    except ValueError:
        return 1 << len(VENUES)


def venue_names(mask: int) -> list[str]:
    names = [v.value for i, v in enumerate(VENUES) if mask & (1 << i)]
    return names + (["other"] if mask & (1 << len(VENUES)) else [])


class CascadeDetector:
    def __init__(self, cfg: CascadeConfig, asset: str, state: CascadeState | None = None) -> None:
        self.cfg = cfg
        self.asset = asset
        self.w_bins = cfg.window_s * 1000 // cfg.bin_ms
        self.ring = self.w_bins + SPARE_BINS
        self.sec_ring = cfg.baseline_s + cfg.window_s
        self.state = state or self._empty()

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
        bins = ts // self.cfg.bin_ms
        bounds = np.flatnonzero(np.diff(bins)) + 1
        for part in np.split(np.arange(ts.size), bounds):
            b = int(bins[part[0]])
            if b <= self.state.head_bin - self.ring + self.w_bins:
                continue  # too late to matter for any window still open
            self._advance(max(b, self.state.head_bin))
            self._add_bin(b, ts[part], side[part], notional[part], venue_bits[part])
            out += self.evaluate(int(ts[part].max()), price_now)
        return out

    def _add_bin(
        self, b: int, ts: IntArray, side: IntArray, notional: FloatArray, bits: IntArray
    ) -> None:
        s = self.state
        slot = b % self.ring
        for k in (0, 1):
            mine = side == k
            if not mine.any():
                continue
            had = s.count[k, slot] > 0
            s.notional[k, slot] += notional[mine].sum()
            s.count[k, slot] += int(mine.sum())
            s.biggest[k, slot] = max(s.biggest[k, slot], notional[mine].max())
            first = int(ts[mine].min())
            s.last_liq[k] = max(s.last_liq[k], int(ts[mine].max()))
            s.first_ts[k, slot] = min(first, int(s.first_ts[k, slot])) if had else first
            s.venues[k, slot] |= int(np.bitwise_or.reduce(bits[mine]))
            run = s.runs[k]
            if run is not None:
                run.total += float(notional[mine].sum())
                run.events += int(mine.sum())
                run.venues_mask |= int(np.bitwise_or.reduce(bits[mine]))
                run.last_event = max(run.last_event, int(ts[mine].max()))
        sec = int(ts.min()) // 1000
        if sec > s.head_sec - self.sec_ring:
            np.add.at(s.per_second, (ts // 1000) % self.sec_ring, notional)

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
        self._advance(max(int(bins[-1]), self.state.head_bin))
        last_in_bin = np.append(bins[1:] != bins[:-1], True)
        recent = last_in_bin & (bins > self.state.head_bin - self.ring)
        self.state.price[bins[recent] % self.ring] = prices[recent]

    def _advance(self, b: int) -> None:
        """Moves the ring head to bin ``b``, clearing the bins that are reused."""
        s = self.state
        if b > s.head_bin:
            new = np.arange(max(s.head_bin + 1, b - self.ring + 1), b + 1) % self.ring
            for arr in (s.notional, s.count, s.biggest, s.first_ts, s.venues):
                arr[:, new] = 0
            s.price[new] = np.nan
            s.head_bin = b
        sec = (b * self.cfg.bin_ms) // 1000
        if sec > s.head_sec:
            new_s = np.arange(max(s.head_sec + 1, sec - self.sec_ring + 1), sec + 1)
            s.per_second[new_s % self.sec_ring] = 0.0
            s.head_sec = sec

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(self, now: int, price_now: float) -> list[CascadeEvent]:
        s = self.state
        if s.head_bin < 0:
            return []
        win = (np.arange(s.head_bin - self.w_bins + 1, s.head_bin + 1)) % self.ring
        side_sum = s.notional[:, win].sum(axis=1)
        total = float(side_sum.sum())
        out: list[CascadeEvent] = []
        for k in (0, 1):
            run = s.runs[k]
            if run is None:
                started = self._maybe_start(
                    k, win, side_sum=side_sum, total=total, now=now, price_now=price_now
                )
                out += [started] if started else []
            else:
                out += self._follow(run, float(side_sum[k]), win, now, price_now)
        return out

    def _maybe_start(
        self,
        k: int,
        win: IntArray,
        *,
        side_sum: FloatArray,
        total: float,
        now: int,
        price_now: float,
    ) -> CascadeEvent | None:
        cfg, s = self.cfg, self.state
        mine = float(side_sum[k])
        if total < cfg.floor_usd or mine < cfg.dominance * total:
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
        self, run: CascadeRun, mine: float, win: IntArray, now: int, price_now: float
    ) -> list[CascadeEvent]:
        run.window = mine
        run.peak_rate = max(run.peak_rate, self._rate(run.side))
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

    def _rate(self, k: int) -> float:
        """USD/s over the last second for side k."""
        s = self.state
        n = 1000 // self.cfg.bin_ms
        last = np.arange(s.head_bin - n + 1, s.head_bin + 1) % self.ring
        return float(s.notional[k, last].sum())

    def _price_before_window(self) -> float:
        """The last known price at or before the window's start (NaN-free), 0 if unknown."""
        s = self.state
        start = s.head_bin - self.w_bins
        older = np.arange(start, s.head_bin - self.ring, -1) % self.ring
        prices = s.price[older]
        known = np.flatnonzero(~np.isnan(prices))
        if known.size:
            return float(prices[known[0]])
        newer = np.arange(start + 1, s.head_bin + 1) % self.ring
        prices = s.price[newer]
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
