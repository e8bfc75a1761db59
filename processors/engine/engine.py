"""The detection engine: per-asset state and detectors behind one small API.

Plain Python/NumPy, no stream framework: the Faust worker and the embedded runner are thin
wiring around ``process`` / ``advance`` / ``snapshot`` / ``restore``. Engine time is event
time (``ts_event``), so replays are deterministic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from operator import attrgetter

from liqwatch.schema import (
    Alert,
    AlertUpdate,
    DeadLetter,
    Liquidation,
    MarketEvent,
    MarkPrice,
    OpenInterest,
    VenueCoverage,
)
from processors.engine.asset import AssetEngine
from processors.engine.config import EngineConfig
from processors.engine.inputs import dead_letter
from processors.engine.metrics import EngineMetrics
from processors.engine.reporting import Output
from processors.engine.serde import decode_state, encode_state
from processors.engine.state import STATE_VERSION, AssetState

log = logging.getLogger(__name__)

__all__ = ["Engine", "Output"]


class SnapshotError(ValueError):
    """A snapshot blob that cannot be restored (corrupt, or from another state version)."""


class Engine:
    def __init__(self, config: EngineConfig, metrics: EngineMetrics | None = None) -> None:
        config.validate()
        self.config = config
        self.metrics = metrics
        self._assets: dict[str, AssetEngine] = {}
        self._dead: list[DeadLetter] = []

    # --- the API the runners call -----------------------------------------------------------

    def process(self, events: Sequence[MarketEvent]) -> list[Output]:
        """Processes a batch (usually one envelope); returns signals, alerts and updates."""
        out: list[Output] = []
        for asset, run in _runs(events):
            if not isinstance(run[0], Liquidation | MarkPrice | OpenInterest):
                self._drop(run, f"not a market event: {type(run[0]).__name__}")
                continue
            if not asset:
                self._drop(run, "event without an asset")
                continue
            engine = self._asset(asset)
            out += engine.process_run(run)
            self._collect(engine, run)
        self._count_outputs(out)
        return out

    def advance(self, now_ms: int) -> list[Output]:
        """Time-driven outputs for every asset up to event time ``now_ms``."""
        out: list[Output] = []
        for asset in sorted(self._assets):
            engine = self._assets[asset]
            if engine.state.next_tick:
                out += engine.advance(now_ms)
        self._count_outputs(out)
        return out

    def snapshot(self, asset: str) -> bytes:
        return encode_state(self._asset(asset).state)

    def restore(self, asset: str, blob: bytes) -> None:
        try:
            state = decode_state(blob, AssetState)
        except Exception as exc:  # msgspec raises several types for corrupt input
            raise SnapshotError(f"cannot restore {asset}: {exc}") from exc
        if state.version != STATE_VERSION or state.asset != asset:
            raise SnapshotError(
                f"cannot restore {asset}: snapshot is for {state.asset} v{state.version}"
            )
        self._assets[asset] = self._new_asset(asset, state)

    def assets(self) -> list[str]:
        return sorted(self._assets)

    # --- extras for runners, tests and benchmarks ---------------------------------------------

    def drain_dead_letters(self) -> list[DeadLetter]:
        """Events the engine dropped since the last call (the runner sends them to the DLQ)."""
        dead, self._dead = self._dead, []
        return dead

    def coverage(self, asset: str, now_ms: int) -> list[VenueCoverage]:
        return self._asset(asset).market.coverage(now_ms)

    def asset_engine(self, asset: str) -> AssetEngine:
        return self._asset(asset)

    # --- internals --------------------------------------------------------------------------

    def _asset(self, asset: str) -> AssetEngine:
        engine = self._assets.get(asset)
        if engine is None:
            engine = self._assets[asset] = self._new_asset(asset, None)
        return engine

    def _new_asset(self, asset: str, state: AssetState | None) -> AssetEngine:
        engine = AssetEngine(asset, self.config.for_asset(asset), state)
        engine.on_stale = self._on_stale
        if self.metrics is not None:
            self.metrics.assets.set(len(self._assets) + (asset not in self._assets))
        return engine

    def _collect(self, engine: AssetEngine, run: list[MarketEvent]) -> None:
        kind = type(run[0]).__name__
        dropped = len(engine.dead_letters)
        if dropped:
            log.warning("%s: dropped %d %s event(s) (dead-lettered)", engine.asset, dropped, kind)
            self._dead += engine.dead_letters
            engine.dead_letters = []
        if self.metrics is not None:
            self.metrics.events_of(kind).inc(len(run) - dropped)
            if dropped:
                self.metrics.dropped_of(kind).inc(dropped)

    def _drop(self, run: list[MarketEvent], reason: str) -> None:
        kind = type(run[0]).__name__
        log.warning("dropped %d %s event(s): %s", len(run), kind, reason)
        self._dead += [dead_letter(e, kind, reason) for e in run]
        if self.metrics is not None:
            self.metrics.dropped_of(kind).inc(len(run))

    def _on_stale(self, asset: str, venue: str, stale: bool) -> None:
        if self.metrics is not None:
            self.metrics.venue_stale.labels(asset, venue).set(1 if stale else 0)

    def _count_outputs(self, out: list[Output]) -> None:
        if self.metrics is None or not out:
            return
        for o in out:
            name = o.kind.value if isinstance(o, Alert) else type(o).__name__
            self.metrics.outputs_of("alert_update" if isinstance(o, AlertUpdate) else name).inc()


def _runs(events: Sequence[MarketEvent]) -> Iterator[tuple[str, list[MarketEvent]]]:
    """Maximal runs of consecutive events with the same asset and kind (order kept)."""
    if not events:
        return
    batch = list(events)
    if len(set(map(type, batch))) == 1 and _one_asset(batch):
        yield _asset_of(batch[0]), batch  # an envelope: the usual case
        return
    run: list[MarketEvent] = []
    key: tuple[str, type] | None = None
    for e in batch:
        k = (_asset_of(e), type(e))
        if k != key and run:
            yield _asset_of(run[0]), run
            run = []
        key = k
        run.append(e)
    if run:
        yield _asset_of(run[0]), run


def _one_asset(batch: list[MarketEvent]) -> bool:
    """Whether every event names the same asset (as ``_asset_of`` reads it)."""
    try:
        assets = set(map(_ASSET, batch))
    except AttributeError:  # not a market event: the slow path sorts it out
        return len(set(map(_asset_of, batch))) == 1
    return len(assets) == 1 and isinstance(next(iter(assets)), str)


_ASSET = attrgetter("asset")


def _asset_of(event: object) -> str:
    return str(getattr(event, "asset", "") or "")
