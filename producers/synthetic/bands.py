"""Ground truth for dense bands of liquidation prices: formed, approached, swept, dissolved.

Observed once per simulated second on the true book (every open position's liquidation price)
and the 1 s mark price, i.e. what a perfect detector with perfect position knowledge would
see. Definitions are in docs/synthetic.md ("Band labels"); keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liqwatch.schema import Label, LabelKind, Side
from producers.synthetic.book import LogGrid, PositionBook
from producers.synthetic.scenario import AssetSpec, LabelRules


@dataclass
class Band:
    side: Side
    lo: int  # bucket indices, inclusive
    hi: int
    notional_usd: float
    entered_at: int | None = None  # price inside the band since (ms)
    ever_entered: bool = False
    approached_at: int | None = None
    labelled: bool = True  # formed inside reach (not brought into reach by price)


class BandTracker:
    def __init__(self, spec: AssetSpec, rules: LabelRules, grid: LogGrid) -> None:
        self.asset = spec.asset
        self.rules = rules
        self.grid = grid
        self.bucket_min = spec.band_bucket_min_usd
        self.band_min = spec.band_min_usd
        self.bands: list[Band] = []
        self.labels: list[Label] = []
        self.last_price: float | None = None

    def observe(self, t: int, price: float, book: PositionBook) -> None:
        for band in list(self.bands):
            self._update(band, t, price, book)
        for side in (Side.LONG, Side.SHORT):
            self._form(side, t, price, book.density(side))
        self.last_price = price

    def finish(self, end_ms: int) -> list[Label]:
        for band in self.bands:
            if band.approached_at is not None:
                self._label(LabelKind.APPROACH, band, band.approached_at, end_ms, "expired")
        self.bands.clear()
        return sorted(self.labels, key=lambda lab: (lab.start_ms, lab.end_ms, lab.kind))

    # --- geometry ---------------------------------------------------------------------------

    def _near(self, band: Band) -> float:
        """The edge price reaches first: the top of a long band, the bottom of a short band."""
        return self.grid.upper(band.hi) if band.side is Side.LONG else self.grid.lower(band.lo)

    def _far(self, band: Band) -> float:
        return self.grid.lower(band.lo) if band.side is Side.LONG else self.grid.upper(band.hi)

    def _distance(self, band: Band, price: float) -> float:
        """Fraction of price still to travel to the near edge (≤ 0 once inside)."""
        near = self._near(band)
        return (price - near) / price if band.side is Side.LONG else (near - price) / price

    def _crossed(self, band: Band, price: float) -> bool:
        far = self._far(band)
        return price < far if band.side is Side.LONG else price > far

    # --- lifecycle --------------------------------------------------------------------------

    def _update(self, band: Band, t: int, price: float, book: PositionBook) -> None:
        if self._crossed(band, price):
            start = band.entered_at if band.entered_at is not None else t
            note = f"swept notional_usd={band.notional_usd:.0f}"
            self._label(LabelKind.SWEEP, band, start, t, note)
            self._resolve_approach(band, t, "swept")
            self.bands.remove(band)
            return
        distance = self._distance(band, price)
        if distance <= 0:
            if band.entered_at is None:
                band.entered_at = t
            band.ever_entered = True
        else:
            band.entered_at = None
        self._approach(band, t, distance)
        if band.entered_at is None:
            self._measure_or_dissolve(band, t, book)

    def _approach(self, band: Band, t: int, distance: float) -> None:
        if band.approached_at is None:
            if distance <= self.rules.approach_pct / 100:
                band.approached_at = t
        elif distance >= self.rules.invalidation_pct / 100:
            self._resolve_approach(band, t, "invalidated")

    def _resolve_approach(self, band: Band, t: int, outcome: str) -> None:
        if band.approached_at is not None:
            self._label(LabelKind.APPROACH, band, band.approached_at, t, outcome)
            band.approached_at = None

    def _measure_or_dissolve(self, band: Band, t: int, book: PositionBook) -> None:
        notional = float(book.density(band.side)[band.lo : band.hi + 1].sum())
        if notional >= self.rules.dissolve_ratio * self.band_min:
            band.notional_usd = notional
            return
        # partly liquidated bands that shrink away are dropped without a label: not a dissolve
        if not band.ever_entered and band.labelled:
            note = f"dissolved notional_usd={notional:.0f}"
            self._label(LabelKind.CLUSTER_SHIFT, band, t, t, note)
        self._resolve_approach(band, t, "expired")
        self.bands.remove(band)

    def _form(self, side: Side, t: int, price: float, density: np.ndarray) -> None:
        reach = self.rules.reach_pct / 100
        if side is Side.LONG:
            first, last = self.grid.index(price * (1 - reach)), self.grid.index(price)
        else:
            first, last = self.grid.index(price), self.grid.index(price * (1 + reach))
        window = density[first : last + 1]
        smooth = _boxcar(density, self.rules.band_smooth_buckets)[first : last + 1]
        for lo, hi in _dense_runs(smooth >= self.bucket_min):
            total = float(window[lo : hi + 1].sum())
            if total >= self.band_min:
                self._add_or_grow(side, t, first + lo, first + hi, total)

    def _entered_reach(self, side: Side, lo: int, hi: int) -> bool:
        """Part of the band was out of reach at the previous second's price: price came to it
        (its far edge is the last to come into reach)."""
        if not self.rules.silent_reach_entry or self.last_price is None:
            return False
        reach = self.rules.reach_pct / 100
        if side is Side.LONG:
            return self.grid.lower(lo) < self.last_price * (1 - reach)
        return self.grid.upper(hi) > self.last_price * (1 + reach)

    def _add_or_grow(self, side: Side, t: int, lo: int, hi: int, total: float) -> None:
        for band in self.bands:
            if band.side is side and band.lo <= hi and lo <= band.hi:
                if band.entered_at is None:
                    band.lo, band.hi = min(band.lo, lo), max(band.hi, hi)
                return
        band = Band(side=side, lo=lo, hi=hi, notional_usd=total)
        self.bands.append(band)
        if self._entered_reach(side, lo, hi):
            band.labelled = False
            return
        self._label(LabelKind.CLUSTER_SHIFT, band, t, t, f"formed notional_usd={total:.0f}")

    def _label(self, kind: LabelKind, band: Band, start: int, end: int, note: str) -> None:
        self.labels.append(
            Label(
                kind=kind,
                asset=self.asset,
                side=band.side,
                start_ms=start,
                end_ms=end,
                band_lo=round(self.grid.lower(band.lo), 8),
                band_hi=round(self.grid.upper(band.hi), 8),
                note=note,
            )
        )


def _boxcar(density: np.ndarray, width: int) -> np.ndarray:
    """Mean over ``width`` buckets centred on each bucket (the detector's smoothing)."""
    if width <= 1:
        return density
    return np.convolve(density, np.ones(width) / width, mode="same")


def _dense_runs(dense: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) index pairs of the runs of True."""
    if not dense.any():
        return []
    edges = np.diff(np.concatenate(([0], dense.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))
