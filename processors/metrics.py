"""Worker metrics, defined once; tests pass a fresh registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from liqwatch.observability import Children


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "liqwatch_worker_events_total", "Market events processed", ["kind"], registry=registry
        )
        self.events_of = Children(self.events)
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
        self.snapshots = Counter(
            "liqwatch_worker_snapshots_total",
            "Per-asset engine snapshots written to the state table",
            registry=registry,
        )
        self.snapshot_seconds = Histogram(
            "liqwatch_worker_snapshot_seconds",
            "Time to save state: flush outputs, write snapshots, ack the envelopes they cover",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
            registry=registry,
        )
        self.merge_buffered = Gauge(
            "liqwatch_worker_merge_buffered_envelopes",
            "Envelopes received and waiting for the per-partition merge",
            registry=registry,
        )
        self.merge_forced = Counter(
            "liqwatch_worker_merge_forced_releases_total",
            "Envelopes released without waiting for a lagging topic (merge over its memory bound)",
            registry=registry,
        )
        self.paused = Gauge(
            "liqwatch_worker_paused_partitions",
            "Source topic-partitions paused because they run ahead of the merge",
            registry=registry,
        )
        self.gaps = Counter(
            "liqwatch_worker_offset_gaps_total",
            "Source messages that skipped offsets (the skipped offsets are read again)",
            registry=registry,
        )
        self.rewinds = Counter(
            "liqwatch_worker_rewinds_total",
            "Topic-partitions read again from the offset the merge expects (gap or stall)",
            registry=registry,
        )
        self.merge_stalled = Gauge(
            "liqwatch_worker_merge_stalled_seconds",
            "How long the merge has released nothing while envelopes wait (0 below the "
            "warning threshold)",
            registry=registry,
        )
        self.early = Counter(
            "liqwatch_worker_early_messages_total",
            "Source messages delivered before reading started (state not yet recovered); "
            "dropped unacked and read again from the start offsets",
            registry=registry,
        )
        self.redelivered = Counter(
            "liqwatch_worker_redelivered_envelopes_total",
            "Envelopes delivered twice and ignored the second time",
            registry=registry,
        )
        self.unacked = Gauge(
            "liqwatch_worker_unacked_envelopes",
            "Envelopes processed but not yet covered by a saved snapshot",
            registry=registry,
        )
        self.restores = Counter(
            "liqwatch_worker_restores_total",
            "Assets whose engine state was restored from the state table",
            registry=registry,
        )
        self.restore_failures = Counter(
            "liqwatch_worker_restore_failures_total",
            "Saved snapshots that could not be restored (the asset starts from empty state)",
            registry=registry,
        )
        self.rebalances = Counter(
            "liqwatch_worker_rebalances_total",
            "Partition revocations (unsaved progress is dropped and re-read from Kafka)",
            registry=registry,
        )
