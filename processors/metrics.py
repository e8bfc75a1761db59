"""Worker metrics, defined once; tests pass a fresh registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "liqwatch_worker_events_total", "Market events processed", ["kind"], registry=registry
        )
        self.envelopes = Counter(
            "liqwatch_worker_envelopes_total", "Envelopes processed", registry=registry
        )
        self.skipped = Counter(
            "liqwatch_worker_skipped_envelopes_total",
            "Envelopes skipped after a restart because the restored state already reflects them",
            registry=registry,
        )
        self.alerts = Counter(
            "liqwatch_worker_alerts_total", "Alert records emitted", ["kind"], registry=registry
        )
        self.signals = Counter(
            "liqwatch_worker_signals_total", "Signals emitted", ["kind"], registry=registry
        )
        self.process_seconds = Histogram(
            "liqwatch_worker_process_seconds",
            "Time to process one envelope through the engine",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=registry,
        )
        self.venue_stale = Gauge(
            "liqwatch_worker_venue_stale",
            "1 when a venue's data for an asset is stale",
            ["asset", "venue"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "liqwatch_dlq_messages_total",
            "Records sent to the dead-letter topic",
            ["source"],
            registry=registry,
        )
