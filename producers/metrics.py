"""Prometheus metrics of a producer process, defined once, registered on a given registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProducerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.frames = Counter(
            "liqwatch_producer_frames_total",
            "Venue frames parsed, by venue and channel family",
            ["venue", "channel"],
            registry=registry,
        )
        self.events = Counter(
            "liqwatch_producer_events_total",
            "Normalized events produced by the parsers",
            ["venue", "channel"],
            registry=registry,
        )
        self.ignored_frames = Counter(
            "liqwatch_producer_ignored_frames_total",
            "Well-formed frames without events (acks, pongs, heartbeats)",
            ["venue", "channel"],
            registry=registry,
        )
        self.parse_errors = Counter(
            "liqwatch_producer_parse_errors_total",
            "Frames sent to the dead-letter topic, by reason class",
            ["venue", "reason"],
            registry=registry,
        )
        self.duplicate_events = Counter(
            "liqwatch_producer_duplicate_events_total",
            "Events dropped because their event_id was just seen (replay after a reconnect)",
            ["venue"],
            registry=registry,
        )
        self.reconnects = Counter(
            "liqwatch_producer_reconnects_total",
            "Websocket reconnects, by reason (error, closed, stale, heartbeat, lifetime)",
            ["venue", "reason"],
            registry=registry,
        )
        self.connected = Gauge(
            "liqwatch_producer_connected",
            "1 while the venue connection is subscribed",
            ["venue", "endpoint"],
            registry=registry,
        )
        self.staleness = Gauge(
            "liqwatch_producer_staleness_seconds",
            "Seconds since the last data frame from the venue",
            ["venue"],
            registry=registry,
        )
        self.rest_requests = Counter(
            "liqwatch_producer_rest_requests_total",
            "REST polls (open interest), by HTTP status or error",
            ["venue", "status"],
            registry=registry,
        )
        self.instrument_refreshes = Counter(
            "liqwatch_producer_instrument_refreshes_total",
            "Instrument metadata loads, by source (rest, cache, default) or failure",
            ["venue", "result"],
            registry=registry,
        )
        self.produce_latency = Histogram(
            "liqwatch_producer_produce_latency_seconds",
            "From frame receipt to Kafka delivery acknowledgement",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.kafka_delivered = Counter(
            "liqwatch_producer_kafka_delivered_total",
            "Kafka messages acknowledged by the broker",
            ["topic"],
            registry=registry,
        )
        self.kafka_delivery_errors = Counter(
            "liqwatch_producer_kafka_delivery_errors_total",
            "Kafka messages the broker did not acknowledge",
            ["topic"],
            registry=registry,
        )
