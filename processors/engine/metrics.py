"""Engine metrics, defined once; tests pass a fresh registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from liqwatch.observability import Children


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry, venue_stale: Gauge | None = None) -> None:
        """``venue_stale``: a gauge (labels asset, venue) to set instead of the engine's own,
        for a service that exposes staleness under its own name."""
        self.events = Counter(
            "liqwatch_engine_events_total",
            "Market events processed by the detection engine",
            ["kind"],
            registry=registry,
        )
        self.dropped = Counter(
            "liqwatch_engine_dropped_events_total",
            "Events the engine could not use, sent to the dead-letter record",
            ["kind"],
            registry=registry,
        )
        self.outputs = Counter(
            "liqwatch_engine_outputs_total",
            "Signals, alerts and alert updates emitted",
            ["type"],
            registry=registry,
        )
        self.venue_stale = venue_stale or Gauge(
            "liqwatch_engine_venue_stale",
            "1 while a venue's data for an asset is stale",
            ["asset", "venue"],
            registry=registry,
        )
        self.assets = Gauge(
            "liqwatch_engine_assets", "Assets with engine state in memory", registry=registry
        )
        self.events_of = Children(self.events)
        self.dropped_of = Children(self.dropped)
        self.outputs_of = Children(self.outputs)
