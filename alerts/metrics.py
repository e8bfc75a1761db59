"""Prometheus metrics of the alerter, defined once; tests pass a fresh registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class AlerterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "liqwatch_alerter_deliveries_total",
            "Delivery records by outcome and channel (one per alert/update, route and target)",
            ["status", "channel"],
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "liqwatch_alerter_delivery_seconds",
            "From submit to the final delivery outcome of one notification, retries included",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "liqwatch_alerter_queue_depth",
            "Messages waiting in the dispatcher's bounded queue",
            registry=registry,
        )
        self.in_flight = Gauge(
            "liqwatch_alerter_deliveries_in_flight",
            "Deliveries being attempted or waiting for a retry",
            registry=registry,
        )
        self.retries = Counter(
            "liqwatch_alerter_retries_total",
            "Delivery attempts after the first one",
            registry=registry,
        )
        self.queue_full = Counter(
            "liqwatch_alerter_queue_full_total",
            "Messages refused because the dispatcher queue was full (recorded as failed)",
            registry=registry,
        )
        self.replays = Counter(
            "liqwatch_alerter_replays_skipped_total",
            "Deliveries skipped because the sent-ids store already had them",
            registry=registry,
        )
        self.consumed = Counter(
            "liqwatch_alerter_messages_total",
            "Kafka messages consumed, by topic kind",
            ["kind"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "liqwatch_dlq_messages_total",
            "Records sent to the dead-letter topic, by the component that dropped them",
            ["source"],
            registry=registry,
        )
        self.outcomes = Counter(
            "liqwatch_alerter_outcomes_total",
            "Alert outcomes computed, by horizon and hit",
            ["horizon_min", "hit"],
            registry=registry,
        )
        self.render_seconds = Histogram(
            "liqwatch_alerter_heatmap_render_seconds",
            "Time to render one heatmap PNG attachment",
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 1, 2),
            registry=registry,
        )
