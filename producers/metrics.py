"""Prometheus metrics of a producer process, defined once, registered on a given registry.

The names, types and labels of the contract in ``deploy/metrics.yaml`` (dashboards and alert
rules rely on them) come first; the rest are extra detail for debugging.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProducerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # --- the contract (deploy/metrics.yaml) ---------------------------------------------
        self.frames = Counter(
            "liqwatch_producer_frames_total",
            "Venue frames received, per subscribed channel family (or REST path).",
            ["venue", "channel"],
            registry=registry,
        )
        self.events = Counter(
            "liqwatch_producer_events_total",
            "Normalized events parsed from venue frames, per event kind.",
            ["venue", "kind"],
            registry=registry,
        )
        self.parse_errors = Counter(
            "liqwatch_producer_parse_errors_total",
            "Frames that could not be parsed; each also goes to the dead-letter topic.",
            ["venue", "reason"],
            registry=registry,
        )
        self.reconnects = Counter(
            "liqwatch_producer_reconnects_total",
            "Websocket reconnects.",
            ["venue"],
            registry=registry,
        )
        self.staleness = Gauge(
            "liqwatch_producer_staleness_seconds",
            "Seconds since the venue last sent a data frame (worst of its connections).",
            ["venue"],
            registry=registry,
        )
        self.delivery_errors = Counter(
            "liqwatch_producer_delivery_errors_total",
            "Kafka produce requests that failed after the client's retries.",
            registry=registry,
        )
        self.produce_latency = Histogram(
            "liqwatch_producer_produce_latency_seconds",
            "Time from handing an envelope to the Kafka client to its delivery report.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.dlq_messages = Counter(
            "liqwatch_dlq_messages_total",
            "Records sent to the dead-letter topic, by the component that dropped them.",
            ["source"],
            registry=registry,
        )
        # --- detail ---------------------------------------------------------------------------
        self.ignored_frames = Counter(
            "liqwatch_producer_ignored_frames_total",
            "Well-formed frames without events (acks, pongs, heartbeats).",
            ["venue", "channel"],
            registry=registry,
        )
        self.duplicate_events = Counter(
            "liqwatch_producer_duplicate_events_total",
            "Events dropped because their event_id was just seen (replay after a reconnect).",
            ["venue"],
            registry=registry,
        )
        self.reconnect_reasons = Counter(
            "liqwatch_producer_reconnect_reasons_total",
            "Websocket reconnects by reason: error, closed, stale, heartbeat, lifetime.",
            ["venue", "reason"],
            registry=registry,
        )
        self.connected = Gauge(
            "liqwatch_producer_connected",
            "1 while a venue connection is subscribed.",
            ["venue", "endpoint"],
            registry=registry,
        )
        self.callback_errors = Counter(
            "liqwatch_producer_callback_errors_total",
            "Frames whose consumer callback raised (logged; the connection carries on).",
            ["venue"],
            registry=registry,
        )
        self.rest_requests = Counter(
            "liqwatch_producer_rest_requests_total",
            "REST polls (open interest), by HTTP status or error.",
            ["venue", "status"],
            registry=registry,
        )
        self.instrument_refreshes = Counter(
            "liqwatch_producer_instrument_refreshes_total",
            "Instrument metadata loads, by source (rest, cache, stale_cache, default) or failure.",
            ["venue", "result"],
            registry=registry,
        )
        self.delivered = Counter(
            "liqwatch_producer_delivered_total",
            "Kafka messages acknowledged by the broker.",
            registry=registry,
        )
        self._staleness_sources: dict[tuple[str, str], Callable[[], float]] = {}

    def reconnected(self, venue: str, reason: str) -> None:
        self.reconnects.labels(venue).inc()
        self.reconnect_reasons.labels(venue, reason).inc()

    def watch_staleness(
        self, venue: str, endpoint: str, seconds_since_data: Callable[[], float]
    ) -> None:
        """Staleness computed when scraped, so an outage shows even while nobody is connected;
        a venue is as stale as its stalest connection (Bybit: linear and inverse)."""
        sources = self._staleness_sources
        sources[(venue, endpoint)] = seconds_since_data

        def worst() -> float:
            return max(since() for (v, _), since in sources.items() if v == venue)

        self.staleness.labels(venue).set_function(worst)
