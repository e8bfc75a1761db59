"""Settings of the ClickHouse sink (``LIQWATCH_SINK_*``) and of data retention.

Connection settings are the shared ``KafkaSettings`` / ``ClickHouseSettings`` /
``ObservabilitySettings`` from the core; each reads its own ``LIQWATCH_*`` variables.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from liqwatch.settings import ClickHouseSettings, KafkaSettings, ObservabilitySettings


class RetentionSettings(BaseSettings):
    """TTL per table family in days; 0 keeps data forever (``LIQWATCH_CLICKHOUSE_*_TTL_DAYS``)."""

    model_config = SettingsConfigDict(env_prefix="LIQWATCH_CLICKHOUSE_", extra="ignore")

    raw_ttl_days: int = Field(default=0, ge=0)  # liquidations, open_interest, mark_price
    heatmap_ttl_days: int = Field(default=0, ge=0)
    signal_ttl_days: int = Field(default=0, ge=0)
    aggregate_ttl_days: int = Field(default=0, ge=0)  # liquidations_1m
    dead_letter_ttl_days: int = Field(default=0, ge=0)


class SinkSettings(BaseSettings):
    """The Kafka -> ClickHouse sink (``liqwatch sink``)."""

    model_config = SettingsConfigDict(env_prefix="LIQWATCH_SINK_", extra="ignore")

    group_id: str = "liqwatch-sink"
    # A batch is inserted when it holds this many rows or is this old, whichever comes first.
    batch_max_rows: int = Field(default=50_000, ge=1)
    batch_max_ms: int = Field(default=1_000, ge=1)
    # Hard bound on rows held in memory (the batch being inserted plus the one filling up).
    # At the bound the sink pauses its partitions until ClickHouse catches up.
    buffer_max_rows: int = Field(default=300_000, ge=1)
    # Batches stored concurrently (each on its own connection); offsets still commit in order.
    # Several let ClickHouse finish one insert while the next ones are being sent.
    max_inflight_batches: int = Field(default=3, ge=1, le=8)
    # A full buffer first just waits for a batch to be stored; after this long the partitions
    # are paused (so a long ClickHouse outage costs no fetching, and the group stays served).
    pause_after_s: float = Field(default=1.0, ge=0)
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=10.0, gt=0)
    # Only used when the sink's offset record (table sink_offsets) cannot be read at
    # assignment: the first rows per partition whose liquidations are checked one by one
    # against the table before insert. None = buffer_max_rows (the most one batch can hold).
    replay_check_rows: int | None = Field(default=None, ge=0)
    # Longest wait for one ClickHouse request (an insert of a whole batch) before retrying it.
    request_timeout_s: float = Field(default=120.0, gt=0)
    # Market envelopes are sent to ClickHouse as the JSON they came in, and parsed there: a
    # quarter of the sink's CPU per row. Off: decoded into structs here, as other topics are.
    parse_on_server: bool = True
    poll_max_messages: int = Field(default=2_000, ge=1)
    # Raw messages the Kafka client may prefetch, outside the row bound above (its own memory).
    fetch_queue_kbytes: int = Field(default=32_768, ge=1)
    fetch_partition_kbytes: int = Field(default=8_192, ge=1)
    # Pause of the prefetch when that queue is full, before fetching again.
    fetch_queue_backoff_ms: int = Field(default=20, ge=0, le=300_000)
    session_timeout_ms: int = Field(default=10_000, ge=1)
    revoke_timeout_s: float = Field(default=30.0, gt=0)
    lag_interval_s: float = Field(default=5.0, gt=0)
    migrate_on_start: bool = True
    # Health/metrics port; None uses LIQWATCH_METRICS_PORT, 0 picks a free port.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    @model_validator(mode="after")
    def _check_bounds(self) -> SinkSettings:
        if self.batch_max_rows > self.buffer_max_rows:
            raise ValueError(
                f"batch_max_rows ({self.batch_max_rows}) must not exceed "
                f"buffer_max_rows ({self.buffer_max_rows})"
            )
        return self

    @property
    def replay_rows(self) -> int:
        return self.buffer_max_rows if self.replay_check_rows is None else self.replay_check_rows
