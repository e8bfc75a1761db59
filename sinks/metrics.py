"""Prometheus metrics of the ClickHouse sink, registered once per registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class SinkMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter(
            "liqwatch_sink_rows_total",
            "Rows inserted into ClickHouse, per table",
            ["table"],
            registry=registry,
        )
        self.messages = Counter(
            "liqwatch_sink_messages_total",
            "Kafka messages consumed, per topic",
            ["topic"],
            registry=registry,
        )
        self.poison = Counter(
            "liqwatch_sink_poison_messages_total",
            "Undecodable messages sent to the dead-letter topic and table, per topic",
            ["topic"],
            registry=registry,
        )
        self.dlq_messages = Counter(
            "liqwatch_dlq_messages_total",
            "Records sent to the dead-letter topic, by the component that dropped them.",
            ["source"],
            registry=registry,
        )
        self.rejected_rows = Counter(
            "liqwatch_sink_rejected_rows_total",
            "Decoded records ClickHouse refused, stored as dead letters instead, per table",
            ["table"],
            registry=registry,
        )
        self.replayed_rows = Counter(
            "liqwatch_sink_replayed_rows_total",
            "Rows of an interrupted batch re-consumed and found already stored, per table",
            ["table"],
            registry=registry,
        )
        self.replayed_messages = Counter(
            "liqwatch_sink_replayed_messages_total",
            "Messages re-consumed after a restart or rebalance and skipped: already stored",
            registry=registry,
        )
        self.envelope_fallbacks = Counter(
            "liqwatch_sink_envelope_fallbacks_total",
            "Batches of envelopes ClickHouse would not parse, decoded in Python instead, per table",
            ["table"],
            registry=registry,
        )
        self.insert_failures = Counter(
            "liqwatch_sink_insert_failures_total",
            "Failed insert attempts (the batch is retried; offsets are not committed)",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "liqwatch_sink_batch_seconds",
            "Time to store one batch in ClickHouse, retries included",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.commits = Counter(
            "liqwatch_sink_commits_total",
            "Kafka offset commits after a stored batch",
            registry=registry,
        )
        self.commit_failures = Counter(
            "liqwatch_sink_commit_failures_total",
            "Kafka offset commits that failed (retried before the next batch)",
            registry=registry,
        )
        self.dlq_failures = Counter(
            "liqwatch_sink_dlq_produce_failures_total",
            "Dead letters that could not be produced to the dead-letter topic",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "liqwatch_sink_consumer_lag",
            "Messages between the sink's committed offset and the partition's end",
            ["topic", "partition"],
            registry=registry,
        )
        self.buffer_rows = Gauge(
            "liqwatch_sink_buffer_rows",
            "Rows held in memory: the batch being stored plus the batch filling up",
            registry=registry,
        )
        self.buffer_rows_max = Gauge(
            "liqwatch_sink_buffer_rows_high_water",
            "Highest liqwatch_sink_buffer_rows seen since start",
            registry=registry,
        )
        self.buffer_limit = Gauge(
            "liqwatch_sink_buffer_limit_rows",
            "Configured bound on rows held in memory",
            registry=registry,
        )
        self.paused = Gauge(
            "liqwatch_sink_paused",
            "1 while consumption is paused because the buffer is full",
            registry=registry,
        )
        self.clickhouse_up = Gauge(
            "liqwatch_sink_clickhouse_up",
            "1 when the last ClickHouse request succeeded",
            registry=registry,
        )
        self._high_water = 0

    def set_buffer(self, rows: int) -> None:
        self.buffer_rows.set(rows)
        if rows > self._high_water:
            self._high_water = rows
            self.buffer_rows_max.set(rows)

    @property
    def buffer_high_water(self) -> int:
        return self._high_water
