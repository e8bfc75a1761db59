"""One asset's engine: the layers and detectors, fed by runs of same-kind events.

Runs are sorted by event time and cut at whole seconds, so time-driven work (cluster
evaluation, cascade ends, expiries, pressure samples, snapshots) happens at the same event
times however the input was batched. Nothing here reads the wall clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from liqwatch.schema import (
    Completeness,
    DeadLetter,
    Liquidation,
    MarketEvent,
    MarkPrice,
)
from processors.engine import claims
from processors.engine.approach import ApproachDetector
from processors.engine.cascade import CascadeDetector, venue_bit
from processors.engine.clusters import find_clusters
from processors.engine.common import TICK_MS, IntArray
from processors.engine.config import AssetConfig
from processors.engine.estimated import EstimatedLayer, OIChanges, Rows
from processors.engine.grid import PriceGrid, shift_arrays
from processors.engine.implied import implied, tally_run
from processors.engine.inputs import (
    C,
    LiqColumns,
    MarkColumns,
    OIColumns,
    instrument_codes,
    latest_by_instrument,
    liquidation_columns,
    mark_columns,
    oi_columns,
    sliced,
)
from processors.engine.keylevels import KeyLevelWatch
from processors.engine.market import OI_SAMPLE_MS, MarketContext
from processors.engine.pressure import PressureTracker
from processors.engine.realized import RealizedLayer
from processors.engine.reporting import Output, Reporter
from processors.engine.snapshots import cluster_snapshots, heatmap_snapshot
from processors.engine.state import AssetState, ForcedTally
from processors.engine.sweep import SweepDetector
from processors.engine.tracker import ClusterTracker

log = logging.getLogger(__name__)

MAX_CATCHUP_TICKS = 600  # after a longer silence, time-driven work jumps to the present


class AssetEngine:
    def __init__(self, asset: str, cfg: AssetConfig, state: AssetState | None = None) -> None:
        self.asset = asset
        self.cfg = cfg
        self.grid = PriceGrid(cfg.grid, state.grid_offset if state else None)
        size = self.grid.size
        self.realized = RealizedLayer(cfg.realized, size, state.realized if state else None)
        self.estimated = EstimatedLayer(cfg.model, self.grid, state.estimated if state else None)
        self.tracker = ClusterTracker(cfg.cluster, self.grid, state.tracker if state else None)
        self.sweeps = SweepDetector(cfg.sweep, cfg.grid.bucket_bp, state.sweep if state else None)
        self.approach = ApproachDetector(cfg.approach, asset, state.approach if state else None)
        self.cascade = CascadeDetector(cfg.cascade, asset, state.cascade if state else None)
        self.pressure = PressureTracker(
            cfg.pressure, cfg.realized.timeframes_s, state.pressure if state else None
        )
        self.key_levels = KeyLevelWatch(cfg.key_levels, state.key_levels if state else None)
        self.market = MarketContext(cfg.staleness, state.market if state else None)
        self.report = Reporter(asset, cfg, self.market, self.estimated)
        self.state = state or self._new_state()
        self.dead_letters: list[DeadLetter] = []
        self.on_stale: Callable[[str, str, bool], None] | None = None

    def _new_state(self) -> AssetState:
        return AssetState(
            asset=self.asset,
            realized=self.realized.state,
            estimated=self.estimated.state,
            tracker=self.tracker.state,
            sweep=self.sweeps.state,
            approach=self.approach.state,
            cascade=self.cascade.state,
            pressure=self.pressure.state,
            key_levels=self.key_levels.state,
            market=self.market.state,
        )

    @property
    def price(self) -> float:
        return self.market.state.price

    # --- input runs -------------------------------------------------------------------------

    def process_run(self, events: list[MarketEvent]) -> list[Output]:
        """One run of events of a single kind for this asset."""
        first = events[0]
        if isinstance(first, Liquidation):
            liq, dead = liquidation_columns(events)  # type: ignore[arg-type]
            self.dead_letters += dead
            return self._chunked(liq, liq.ts, self._liquidations)
        if isinstance(first, MarkPrice):
            marks, dead = mark_columns(events)  # type: ignore[arg-type]
            self.dead_letters += dead
            return self._chunked(marks, marks.ts, self._marks)
        oi, dead = oi_columns(events)  # type: ignore[arg-type]
        self.dead_letters += dead
        return self._chunked(oi, oi.ts, self._open_interest)

    def _chunked(self, cols: C, ts: IntArray, handle: Callable[[C], list[Output]]) -> list[Output]:
        """Handles the time-sorted rows in pieces that never span a tick boundary."""
        out: list[Output] = []
        n, start = int(ts.size), 0
        last = int(ts[-1]) if n else 0
        while start < n:
            t0 = int(ts[start])
            out += self.advance(t0)
            if last < self.state.next_tick:  # the rest is before the next tick: no search
                end = n
            else:
                end = int(np.searchsorted(ts, self.state.next_tick, side="left"))
                end = max(end, start + 1)
            # the whole run in one piece is the usual case for small envelopes: no copy
            out += handle(cols if start == 0 and end == n else sliced(cols, start, end))
            self.state.clock = max(self.state.clock, int(ts[end - 1]))
            start = end
        return out

    def _place_grid(self, price: float) -> None:
        delta = self.grid.centre_on(price)
        self.state.grid_offset = self.grid.offset
        if delta:
            shift_arrays(delta, *self.realized.arrays(), *self.estimated.arrays())

    def _liquidations(self, c: LiqColumns) -> list[Output]:
        ref = self.price
        # Bankruptcy prices sit ~mmr beyond where the position was liquidated: without a fill
        # price, the mark price at that moment says better where it happened.
        price = np.where(c.has_fill | (ref <= 0), c.price, ref)
        if not self.grid.placed:
            self._place_grid(float(price[-1]))
        self.realized.add(c.ts, self.grid.indices(price), c.side, c.usd)
        bits = self._tally(c)
        out: list[Output] = []
        for ev in self.cascade.add(c.ts, c.side, c.usd, bits, ref):
            out += self.report.cascade(ev)
        for res in self.sweeps.on_liquidations(c.ts, price, c.side, c.usd, c.sampled):
            out += self.report.sweep(res)
        return out

    def _tally(self, c: LiqColumns) -> IntArray:
        """Venue coverage and per-instrument tallies; returns each event's venue bit."""
        keys, codes, latest = instrument_codes(c.events)
        forced = self.state.forced_since_oi
        key_bits: list[int] = []
        tallies: list[ForcedTally] = []
        for (venue, instrument), e in zip(keys, latest, strict=True):
            self.market.seen(venue, instrument, e.ts_event, e.completeness)
            key_bits.append(venue_bit(venue))
            name = f"{venue}:{instrument}"
            tally = forced.get(name)
            tallies.append(tally if tally is not None else forced.setdefault(name, ForcedTally()))
        tally_run(tallies, codes, c.ts, c.side, c.usd)
        bits: IntArray = np.array(key_bits, dtype=np.int64)[codes]
        return bits

    def _marks(self, c: MarkColumns) -> list[Output]:
        self.market.marks_seen(latest_by_instrument(c.events).values())
        self.market.set_price(float(c.price[-1]), int(c.ts[-1]))
        last = float(c.price[-1])
        self._place_grid(last)
        now = int(c.ts[-1])
        low, high = float(c.price.min()), float(c.price.max())
        consumed = self.estimated.consume(low, high)
        self.sweeps.credit(self.tracker, consumed)
        results, swept = self.sweeps.on_prices(c.ts, c.price, self.tracker, low, high)
        out: list[Output] = []
        for res in results:
            out += self.report.sweep(res)
        out += self._approaches(now, self.price, swept)
        self.cascade.on_prices(c.ts, c.price)
        for ev in self.cascade.evaluate(now, self.price):
            out += self.report.cascade(ev)
        return out

    def _open_interest(self, c: OIColumns) -> list[Output]:
        keys, codes, latest = instrument_codes(c.events)
        self.market.seen_all(keys, [e.ts_event for e in latest])
        known = self.estimated.state.instruments
        for venue, instrument in keys:
            name = f"{venue}:{instrument}"
            if name not in known:  # its first observation is the baseline
                self.state.forced_since_oi.pop(name, None)
        # The asset's mark price; before the first mark, the price the venue's OI implies.
        ts, base, usd = c.ts.tolist(), c.base.tolist(), c.usd.tolist()
        if self.price > 0:
            rows = Rows(codes, ts, base, usd, [self.price] * len(ts))
        else:
            rows = Rows.priced_by_oi(codes, c.ts, c.base, c.usd)
        changes, firsts = self.estimated.observe_rows(keys, rows)
        out = self._net_of_forced(keys, changes, firsts) if firsts else []
        if changes.ts.size:
            if not self.grid.placed:
                self._place_grid(float(changes.price[-1]))
            self.estimated.apply(changes)
        return out

    def _net_of_forced(
        self, keys: list[tuple[str, str]], changes: OIChanges, firsts: dict[int, int]
    ) -> list[Output]:
        """Adds back, to each instrument's first change, the liquidations seen since its
        previous OI observation (and those a busy sampled feed implies): forced closes were
        consumed by price already, so only voluntary opens and closes should move the levels.

        ``firsts``: key index → position of that instrument's first change.
        """
        forced = self.state.forced_since_oi
        deltas = changes.delta_usd
        out: list[Output] = []
        for k, pos in firsts.items():
            venue, instrument = keys[k]
            seen = forced.pop(f"{venue}:{instrument}", None) if forced else None
            raw = float(deltas[pos])
            deltas[pos] = raw + (seen.total_usd if seen is not None else 0.0)
            hidden = self._hidden(venue, seen, raw)
            if hidden is not None:
                side, usd = hidden
                deltas[pos] = float(deltas[pos]) + usd
                out += self._implied(int(changes.ts[pos]), side, usd, venue)
        return out

    def _hidden(
        self, venue: str, seen: ForcedTally | None, raw_delta: float
    ) -> tuple[int, float] | None:
        info = self.market.state.venues.get(venue)
        if info is None or info.completeness is not Completeness.SAMPLED:
            return None
        tally = seen if seen is not None else ForcedTally()
        return implied(tally, raw_delta, self.cfg.cascade.implied_min_seconds)

    def _implied(self, ts: int, side: int, usd: float, venue: str) -> list[Output]:
        out: list[Output] = []
        for ev in self.cascade.add_implied(ts, side, usd, venue_bit(venue), self.price):
            out += self.report.cascade(ev)
        return out

    # --- time-driven work -------------------------------------------------------------------

    def advance(self, now: int) -> list[Output]:
        """Runs the time-driven work for every whole second up to ``now``."""
        s = self.state
        if s.next_tick == 0:
            s.next_tick = (now // TICK_MS + 1) * TICK_MS
            self.realized.state.window_start = now - now % (self.cfg.realized.tumbling_s * 1000)
            return []
        out: list[Output] = []
        ticks = 0
        while s.next_tick <= now:
            if ticks == MAX_CATCHUP_TICKS:
                s.next_tick = now - now % TICK_MS
            out += self._tick(s.next_tick)
            s.next_tick += TICK_MS
            ticks += 1
        return out

    def _tick(self, t: int) -> list[Output]:
        self.realized.decay_to(t)
        self.estimated.decay_to(t)
        out: list[Output] = []
        for ev in self.cascade.tick(t, self.price):
            out += self.report.cascade(ev)
        for res in self.sweeps.tick(t):
            out += self.report.sweep(res)
        if self.price > 0 and t % self.cfg.cluster.eval_ms == 0:
            out += self._evaluate_clusters(t)
        out += self._pressure(t)
        out += self._key_levels(t)
        self._staleness(t)
        if t % OI_SAMPLE_MS == 0:
            self.market.sample_oi(t, self.estimated.total_oi_usd())
        if t >= self.realized.state.window_start + self.cfg.realized.tumbling_s * 1000:
            out += self._close_window(t)
        return out

    def _evaluate_clusters(self, t: int) -> list[Output]:
        cfg = self.cfg.cluster
        floor_z = cfg.z_dim - cfg.hysteresis_z
        levels = self.estimated.state.levels
        price = self.price
        raws = find_clusters(levels[0], self.grid, 0, price, cfg=cfg, floor_z=floor_z)
        raws += find_clusters(levels[1], self.grid, 1, price, cfg=cfg, floor_z=floor_z)
        out: list[Output] = []
        fresh = self.estimated.state.fresh
        for event in self.tracker.update(raws, t, price, levels, fresh):
            band = self.tracker.band(event.cluster)
            out += self.report.alert(claims.shift_claim(self.asset, event, band, self.price), t)
        out += self._approaches(t, self.price, [])
        return out

    def _approaches(self, now: int, price: float, swept: list[str]) -> list[Output]:
        if price <= 0:
            return []
        out: list[Output] = [
            claims.approach_update(r)
            for r in self.approach.resolve(now, price, self.tracker, swept)
        ]
        for opened in self.approach.check(now, price, self.tracker):
            out += self.report.alert(claims.approach_claim(self.asset, opened), now)
        return out

    def _pressure(self, t: int) -> list[Output]:
        if not self.pressure.due(t):  # most seconds sample no timeframe
            return []
        st = self.realized.state
        x = [float(st.totals[tf, 1] - st.totals[tf, 0]) for tf in range(st.totals.shape[0])]
        out: list[Output] = []
        for shift in self.pressure.tick(t, x):
            if self.price > 0:
                inv = self.cfg.pressure.invalidation_pct
                out += self.report.alert(
                    claims.pressure_claim(self.asset, shift, t, self.price, inv), t
                )
        return out

    def _key_levels(self, t: int) -> list[Output]:
        if not self.cfg.key_levels.levels or not self.grid.placed:
            return []
        out: list[Output] = []
        for hit in self.key_levels.check(self.grid, self.realized):
            out += self.report.alert(claims.key_level_claim(self.asset, hit, t, self.price), t)
        return out

    def _staleness(self, t: int) -> None:
        stale, fresh = self.market.stale_changes(t)
        for venue in stale:
            log.warning(
                "%s: %s data is stale (no message for its expected cadence)", self.asset, venue
            )
        for venue in fresh:
            log.info("%s: %s data is fresh again", self.asset, venue)
        if self.on_stale is not None:
            for venue in stale:
                self.on_stale(self.asset, venue, True)
            for venue in fresh:
                self.on_stale(self.asset, venue, False)

    def _close_window(self, t: int) -> list[Output]:
        tumbling_ms = self.cfg.realized.tumbling_s * 1000
        closed = self.realized.close_window(t - t % tumbling_ms)
        self.realized.flush_small()
        self.estimated.flush_small()
        if not self.grid.placed or self.price <= 0:
            return []
        out: list[Output] = [
            heatmap_snapshot(
                self.asset,
                t,
                grid=self.grid,
                price=self.price,
                realized_window=closed,
                estimated=self.estimated,
                cfg=self.cfg,
            )
        ]
        out += cluster_snapshots(
            self.asset,
            t,
            grid=self.grid,
            price=self.price,
            tracker=self.tracker,
            realized=self.realized,
            cfg=self.cfg,
        )
        return out
