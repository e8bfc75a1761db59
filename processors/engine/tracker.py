"""Cluster identity over time, and the cluster-shift events traders ask for.

Each evaluation's clusters are matched to the tracked ones by band overlap. Intensity moves with
hysteresis (``clusters.tier_for``), and a cluster must be missing for ``miss_evals`` evaluations
before it counts as gone, so nothing flaps. Shift events, for clusters within ``reach_pct`` of
price that price has not entered:

* formed: a cluster reaches bright while at least ``form_fresh_share`` of its notional is new
  positions (the estimated layer's fast-fading copy): an old band that only looks brighter
  because price moved is not news; its side holds ``form_side_share`` of all new notional (the
  other side holds the burst's mirror image); and both held for ``form_hold_s`` (early in a
  burst its side is not in the price yet). Optional (off by default, docs/model.md): its new
  notional is at least ``form_largest_share`` × the side's largest new band;
* grew / faded: an announced cluster moves up / down an intensity tier;
* dissolved: an announced cluster disappears, or falls below ``dissolve_ratio`` of its peak
  notional, without price having entered it (it must reach bright again to re-form);
* moved: the side's dominant cluster (largest notional, at least medium) is replaced by a
  non-overlapping one holding ``dominant_margin`` × the old one's notional (when the old one
  leaves, swept or faded, the next one takes over silently).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from msgspec.structs import replace as copy

from liqwatch.schema import Intensity
from processors.engine.clusters import TIERS, tier_for
from processors.engine.common import LONG, FloatArray
from processors.engine.config import ClusterConfig
from processors.engine.grid import PriceGrid
from processors.engine.state import RawCluster, TrackedCluster, TrackerState
from processors.engine.sums import np_sum, slice_sum

STRONG = (Intensity.MEDIUM, Intensity.BRIGHT)  # tiers that can be a side's dominant cluster


@dataclass(frozen=True)
class ShiftEvent:
    subkind: str  # formed | grew | faded | dissolved | moved
    cluster: TrackedCluster
    ts: int
    previous_tier: Intensity | None = None
    moved_from: tuple[float, float] | None = None


class ClusterTracker:
    def __init__(
        self, cfg: ClusterConfig, grid: PriceGrid, state: TrackerState | None = None
    ) -> None:
        self.cfg = cfg
        self.grid = grid
        self.state = state or TrackerState()
        self._largest_new = [0.0, 0.0]  # per side, this evaluation's largest new-position band
        self._fresh_sums: tuple[float, float] | None = None  # per side, summed once per update

    @property
    def clusters(self) -> list[TrackedCluster]:
        return self.state.clusters

    def band(self, c: TrackedCluster) -> tuple[float, float]:
        return (
            self.grid.lower_edge(c.lo - self.grid.offset),
            self.grid.upper_edge(c.hi - self.grid.offset),
        )

    def near_edge(self, c: TrackedCluster) -> float:
        # only the edge asked for (one exp, not two): runs for every cluster every second
        if c.side == LONG:
            return self.grid.upper_edge(c.hi - self.grid.offset)
        return self.grid.lower_edge(c.lo - self.grid.offset)

    def far_edge(self, c: TrackedCluster) -> float:
        if c.side == LONG:
            return self.grid.lower_edge(c.lo - self.grid.offset)
        return self.grid.upper_edge(c.hi - self.grid.offset)

    def distance_pct(self, c: TrackedCluster, price: float) -> float:
        """How far price still has to travel to the near edge, in % (≤ 0 once inside)."""
        # near_edge inlined (the grid's offset cancels exactly in integer arithmetic): this
        # runs for every cluster several times a second
        if c.side == LONG:
            return (price - math.exp((c.hi + 1) * self.grid.step)) / price * 100.0
        return (math.exp(c.lo * self.grid.step) - price) / price * 100.0

    def in_reach(self, c: TrackedCluster, price: float) -> bool:
        return self.distance_pct(c, price) <= self.cfg.reach_pct

    # --- evaluation -------------------------------------------------------------------------

    def update(
        self,
        raws: list[RawCluster],
        now: int,
        price: float,
        density: FloatArray,
        fresh: FloatArray,
    ) -> list[ShiftEvent]:
        """Matches this evaluation's clusters; ``density`` is the (side, bucket) layer and
        ``fresh`` its fast-fading copy."""
        events: list[ShiftEvent] = []
        seen: set[str] = set()
        self._fresh_sums = None  # fresh changes between evaluations, never during one
        if self.cfg.form_largest_share > 0:
            self._largest_new = self._largest_new_per_side(raws, fresh)
        for raw in sorted(raws, key=lambda r: (-r.notional, r.side, r.lo)):
            match = self._match(raw, seen)
            if match is None:
                match = self._new(raw, now)
            elif match.touched_at == 0:
                events += self._refresh(match, raw, now, price, fresh)
            seen.add(match.cid)
        events += self._age(seen, now, density)
        events += self._dissolved(now, density)
        events += self._dominance(now, price)
        return events

    def _match(self, raw: RawCluster, seen: set[str]) -> TrackedCluster | None:
        best, best_overlap = None, 0
        side, lo, hi = raw.side, raw.lo, raw.hi
        for c in self.state.clusters:
            if c.side != side or c.cid in seen:
                continue
            # min(c.hi, hi) - max(c.lo, lo) + 2, without the builtin calls (runs per pair)
            overlap = (c.hi if c.hi < hi else hi) - (c.lo if c.lo > lo else lo) + 2
            if overlap > best_overlap:  # touching bands match too
                best, best_overlap = c, overlap
        return best

    def _new(self, raw: RawCluster, now: int) -> TrackedCluster:
        side = "long" if raw.side == LONG else "short"
        c = TrackedCluster(
            cid=f"{side}-{now}-{raw.lo}",
            side=raw.side,
            lo=raw.lo,
            hi=raw.hi,
            notional=raw.notional,
            peak_z=raw.peak_z,
            tier=tier_for(raw.peak_z, None, self.cfg),
            first_seen=now,
            last_seen=now,
        )
        self.state.clusters.append(c)
        return c

    def _refresh(
        self, c: TrackedCluster, raw: RawCluster, now: int, price: float, fresh: FloatArray
    ) -> list[ShiftEvent]:
        before = c.tier
        c.lo, c.hi, c.notional, c.peak_z = raw.lo, raw.hi, raw.notional, raw.peak_z
        c.tier = tier_for(raw.peak_z, c.tier, self.cfg)
        c.last_seen = now
        c.misses = 0 if c.tier is not None else c.misses
        if c.tier is None or c.ever_touched or not self.in_reach(c, price):
            c.news_since = 0
            return []
        if not c.announced:
            if self._formed(c, now, fresh):
                c.announced = True
                c.band_lo, c.band_hi = c.lo, c.hi
                c.band_usd = c.peak_usd = c.notional
                return [ShiftEvent("formed", copy(c), now)]
            return []
        if before is not None and c.tier != before:
            grew = TIERS.index(c.tier) > TIERS.index(before)
            return [ShiftEvent("grew" if grew else "faded", copy(c), now, previous_tier=before)]
        return []

    def _formed(self, c: TrackedCluster, now: int, fresh: FloatArray) -> bool:
        """Bright and news, without a break for ``form_hold_s``: early in a burst its side is
        not in the price yet, so its mirror can pass the side rule for a few seconds."""
        if c.tier is not Intensity.BRIGHT or c.retired or not self._is_news(c, fresh):
            c.news_since = 0
            return False
        if not c.news_since:
            c.news_since = now
        return now - c.news_since >= self.cfg.form_hold_s * 1000

    def _age(self, seen: set[str], now: int, density: FloatArray) -> list[ShiftEvent]:
        keep: list[TrackedCluster] = []
        gone: list[TrackedCluster] = []
        for c in self.state.clusters:
            if c.touched_at:
                keep.append(c)  # price is inside: only a sweep or an exit resolves it
                continue
            if c.cid not in seen or c.tier is None:
                c.misses += 1
            (keep if c.misses <= self.cfg.miss_evals else gone).append(c)
        self.state.clusters = keep
        # an announced cluster no longer detected is dissolved only if its band really emptied
        return [
            ShiftEvent("dissolved", copy(c), now)
            for c in gone
            if c.announced and not c.ever_touched and self._emptied(c, density)
        ]

    def _dissolved(self, now: int, density: FloatArray) -> list[ShiftEvent]:
        events: list[ShiftEvent] = []
        for c in self.state.clusters:
            if (
                c.announced
                and not c.ever_touched
                and not c.touched_at
                and self._emptied(c, density)
            ):
                c.announced, c.retired = False, True
                events.append(ShiftEvent("dissolved", copy(c), now))
        return events

    def _new_usd(self, side: int, lo: int, hi: int, fresh: FloatArray) -> float:
        a, b = lo - self.grid.offset, hi - self.grid.offset + 1
        return slice_sum(fresh[side, max(a, 0) : max(b, 0)])

    def _largest_new_per_side(self, raws: list[RawCluster], fresh: FloatArray) -> list[float]:
        largest = [0.0, 0.0]
        for raw in raws:
            new = self._new_usd(raw.side, raw.lo, raw.hi, fresh)
            largest[raw.side] = max(largest[raw.side], new)
        return largest

    def _is_news(self, c: TrackedCluster, fresh: FloatArray) -> bool:
        """Mostly new positions, the burst's largest band, on the side the burst went to."""
        new = self._new_usd(c.side, c.lo, c.hi, fresh)
        if new < self.cfg.form_fresh_share * c.notional:
            return False
        # one burst of new OI is spread over every leverage tier: the model cannot tell which
        # tier the traders chose, so only the burst's largest band is announced
        if new < self.cfg.form_largest_share * self._largest_new[c.side]:
            return False
        if self.cfg.form_side_share <= 0:
            return True
        # the model splits every OI rise over both sides; the side that got less of the recent
        # rises holds the mirror image of the other side's crowd, not a crowd of its own
        sums = self._side_sums(fresh)
        mine, other = sums[c.side], sums[1 - c.side]
        return mine >= self.cfg.form_side_share * (mine + other)

    def _side_sums(self, fresh: FloatArray) -> tuple[float, float]:
        """Each side's total new notional, once per evaluation (each is a sum over the grid)."""
        if self._fresh_sums is None:
            self._fresh_sums = (float(np_sum(fresh[0])), float(np_sum(fresh[1])))
        return self._fresh_sums

    def _emptied(self, c: TrackedCluster, density: FloatArray) -> bool:
        """Measures the announced band; True once below ``dissolve_ratio`` × its peak."""
        lo = max(c.band_lo - self.grid.offset, 0)
        hi = min(c.band_hi - self.grid.offset + 1, density.shape[-1])
        c.band_usd = slice_sum(density[c.side, lo:hi]) if hi > lo else 0.0
        c.peak_usd = max(c.peak_usd, c.band_usd)
        return c.band_usd < self.cfg.dissolve_ratio * c.peak_usd

    def _dominance(self, now: int, price: float) -> list[ShiftEvent]:
        events: list[ShiftEvent] = []
        for side, candidates in enumerate(self._dominance_candidates(price)):
            if not candidates:
                self.state.dominant[side] = ""
                continue
            best, current = self._best_and_current(candidates, self.state.dominant[side])
            if current is None:
                # the old one left (swept, entered, faded, out of reach): not a move
                self.state.dominant[side] = best.cid
                continue
            if best is not current and best.notional >= self.cfg.dominant_margin * current.notional:
                self.state.dominant[side] = best.cid
                events += self._moved(best, current, now)
        return events

    @staticmethod
    def _best_and_current(
        candidates: list[TrackedCluster], dominant: str
    ) -> tuple[TrackedCluster, TrackedCluster | None]:
        """max(candidates, key=(notional, -lo)) and the first whose cid is ``dominant``, in
        one pass: max keeps the first of equal keys, as the strict ``>`` here does."""
        best, current = candidates[0], None
        best_key = (best.notional, -best.lo)
        for c in candidates:
            key = (c.notional, -c.lo)
            if key > best_key:
                best, best_key = c, key
            if current is None and c.cid == dominant:
                current = c
        return best, current

    def _dominance_candidates(self, price: float) -> tuple[list[TrackedCluster], ...]:
        """Per side, in tracking order: the untouched clusters in reach, at least medium."""
        by_side: tuple[list[TrackedCluster], ...] = ([], [])
        for c in self.state.clusters:
            if c.tier in STRONG and not c.ever_touched and self.in_reach(c, price):
                by_side[c.side].append(c)
        return by_side

    def _moved(self, new: TrackedCluster, old: TrackedCluster, now: int) -> list[ShiftEvent]:
        if new.lo <= old.hi and old.lo <= new.hi:
            return []
        return [ShiftEvent("moved", copy(new), now, moved_from=self.band(old))]

    def remove(self, cid: str) -> None:
        self.state.clusters = [c for c in self.state.clusters if c.cid != cid]
