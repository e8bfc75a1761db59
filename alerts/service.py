"""``liqwatch alerter``: Kafka in, notifications and Delivery / outcome records out.

Consumes ``liq.alerts`` (Alert | AlertUpdate), ``liq.signals`` (keeps the recent HeatmapSnapshots
per asset for the PNG) and ``liq.mark_price`` (envelopes; drives outcomes). Produces Delivery
records to ``liq.deliveries`` and outcomes to ``liq.alerts`` as AlertUpdate(subkind="outcome").
An offset on ``liq.alerts`` is committed only once every delivery of that message has its final
record; the sent-ids store makes the redelivery after a crash harmless.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from alerts.delivery import DeliveryConfig, Dispatcher
from alerts.heatmap_png import render_heatmap_png
from alerts.metrics import AlerterMetrics
from alerts.outcomes import OUTCOME_SUBKIND, OutcomeEvent, OutcomeTracker, outcome_update
from alerts.sender import Attachment, RetryPolicy
from liqwatch import codec
from liqwatch.observability import HealthServer
from liqwatch.schema import (
    Alert,
    DeadLetter,
    Delivery,
    Envelope,
    HeatmapSnapshot,
    MarkPrice,
)
from liqwatch.settings import (
    KafkaSettings,
    NotifySettings,
    ObservabilitySettings,
    default_data_dir,
)
from liqwatch.topics import Topics

log = logging.getLogger(__name__)

RAW_KEEP = 10_000  # characters of an unusable message kept in its dead letter


class AlerterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIQWATCH_ALERTER_", extra="ignore")

    group_id: str = "liqwatch-alerter"
    state_dir: Path = Field(default_factory=lambda: default_data_dir() / "alerter")
    queue_size: int = Field(default=1000, ge=1)
    max_in_flight: int = Field(default=256, ge=1)
    per_target: int = Field(default=4, ge=1)
    timeout_s: float = Field(default=15.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    attach_png: bool = True
    heatmap_history: int = Field(default=240, ge=1)  # snapshots kept per asset
    heatmap_window_min: float = Field(default=60.0, gt=0)  # PNG covers this long before the alert
    outcome_horizons_min: Annotated[list[int], NoDecode] = Field(default_factory=lambda: [15, 60])
    poll_batch: int = Field(default=500, ge=1)
    poll_timeout_s: float = Field(default=0.2, gt=0)
    drain_timeout_s: float = Field(default=10.0, ge=0)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)

    @field_validator("outcome_horizons_min", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(v) for v in value.replace(",", " ").split()]
        return value

    def delivery_config(self) -> DeliveryConfig:
        retry = RetryPolicy(
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
        )
        return DeliveryConfig(
            queue_size=self.queue_size,
            max_in_flight=self.max_in_flight,
            per_target=self.per_target,
            retry=retry,
        )


def run_alerter(settings: AlerterSettings, stop: threading.Event) -> None:
    """Run until ``stop`` is set; then drain deliveries, commit offsets and close."""
    asyncio.run(Alerter(settings, stop).run())


class _Offsets:
    """Per partition: the lowest offset still being delivered, or the next one to read."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int], set[int]] = {}
        self._next: dict[tuple[str, int], int] = {}

    def started(self, topic: str, partition: int, offset: int) -> None:
        self._pending.setdefault((topic, partition), set()).add(offset)
        self.seen(topic, partition, offset)

    def seen(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        self._next[key] = max(self._next.get(key, 0), offset + 1)

    def done(self, topic: str, partition: int, offset: int) -> None:
        self._pending.get((topic, partition), set()).discard(offset)

    def positions(self) -> list[TopicPartition]:
        out = []
        for key, nxt in self._next.items():
            pending = self._pending.get(key)
            out.append(TopicPartition(key[0], key[1], min(pending) if pending else nxt))
        return out

    def forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._pending.pop((tp.topic, tp.partition), None)
            self._next.pop((tp.topic, tp.partition), None)


class Alerter:
    def __init__(
        self,
        settings: AlerterSettings,
        stop: threading.Event,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.stop = stop
        self.registry = registry or CollectorRegistry()
        self.metrics = AlerterMetrics(self.registry)
        self.topics = Topics(settings.kafka.topic_prefix)
        self.tracker = OutcomeTracker(settings.outcome_horizons_min)
        self.heatmaps: dict[str, deque[HeatmapSnapshot]] = {}
        self._offsets = _Offsets()
        self._last_turn = time.monotonic()
        self._assigned = False
        self._paused = False
        self.health: HealthServer | None = None
        self._producer = Producer(_producer_config(settings.kafka))
        self._consumer = Consumer(_consumer_config(settings))
        self.dispatcher = Dispatcher.from_settings(
            settings.notify,
            settings.state_dir,
            self._publish_delivery,
            self.metrics,
            settings.delivery_config(),
        )

    async def run(self) -> None:
        obs = self.settings.observability
        health = self.health = HealthServer(
            self.registry, obs.metrics_host, obs.metrics_port, self._live, self._ready
        ).start()
        await self.dispatcher.start()
        self._consumer.subscribe(
            [self.topics.alerts, self.topics.signals, self.topics.mark_price],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
        )
        try:
            await self._loop()
        finally:
            await self.dispatcher.stop(self.settings.drain_timeout_s)
            self._commit(final=True)
            self._consumer.close()
            left = self._producer.flush(10)
            if left:
                log.error("%d records (deliveries/outcomes) not acknowledged by Kafka", left)
            self._producer.close()
            health.stop()

    async def _loop(self) -> None:
        batch = min(self.settings.poll_batch, self.settings.queue_size)
        timeout = self.settings.poll_timeout_s
        while not self.stop.is_set():
            self._apply_backpressure(batch)
            messages = await asyncio.to_thread(self._consumer.consume, batch, timeout)
            for message in messages:
                self._handle_safely(message)
            self._producer.poll(0)
            self._commit()
            self._last_turn = time.monotonic()

    # --- messages ----------------------------------------------------------------------

    def _handle_safely(self, message: Message) -> None:
        """A record that breaks handling goes to the dead-letter topic; the loop goes on."""
        try:
            self.handle(message)
        except Exception as exc:
            log.exception("could not handle a message from %s", message.topic())
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if topic is not None and partition is not None and offset is not None:
                self._offsets.done(topic, partition, offset)
            reason = f"unhandled: {type(exc).__name__}: {exc}"
            self._dead_letter(topic or "?", reason, message.value() or b"")

    def handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("kafka consumer error: %s", error)
            return
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None:
            return
        raw = message.value() or b""
        if topic == self.topics.alerts:
            self._offsets.started(topic, partition, offset)
            self._on_alert_message(raw, lambda: self._offsets.done(topic, partition, offset))
            return
        self._offsets.seen(topic, partition, offset)
        if topic == self.topics.signals:
            self._on_signal(raw)
        elif topic == self.topics.mark_price:
            self._on_marks(raw)

    def _on_alert_message(self, raw: bytes, done: Callable[[], None]) -> None:
        self.metrics.consumed.labels("alert").inc()
        try:
            message = codec.alert_decoder.decode(raw)
        except (codec.DecodeError, codec.ValidationError) as exc:
            self._dead_letter(self.topics.alerts, f"undecodable alert: {exc}", raw)
            done()
            return
        if isinstance(message, Alert):
            if self.tracker.track(message):
                for event in self.tracker.catch_up(message.alert_id):
                    self._emit_outcome(
                        event, message.created_at + event.outcome.horizon_min * 60_000
                    )
            attachments = self._png_source(message) if self.settings.attach_png else None
            self.dispatcher.submit(message, attachments, done)
        else:
            if message.subkind != OUTCOME_SUBKIND:
                self.tracker.note_status(message)
            self.dispatcher.submit(message, None, done)

    def _on_signal(self, raw: bytes) -> None:
        self.metrics.consumed.labels("signal").inc()
        try:
            signal = codec.signal_decoder.decode(raw)
        except (codec.DecodeError, codec.ValidationError) as exc:
            self._dead_letter(self.topics.signals, f"undecodable signal: {exc}", raw)
            return
        if isinstance(signal, HeatmapSnapshot):
            ring = self.heatmaps.setdefault(
                signal.asset, deque(maxlen=self.settings.heatmap_history)
            )
            ring.append(signal)

    def _on_marks(self, raw: bytes) -> None:
        self.metrics.consumed.labels("mark_price").inc()
        try:
            envelope: Envelope = codec.envelope_decoder.decode(raw)
        except (codec.DecodeError, codec.ValidationError) as exc:
            self._dead_letter(self.topics.mark_price, f"undecodable envelope: {exc}", raw)
            return
        for event in envelope.events:
            if isinstance(event, MarkPrice):
                self._on_mark(event)

    def _on_mark(self, mark: MarkPrice) -> None:
        events = self.tracker.on_mark(mark.asset, mark.ts_event, mark.mark_price, mark.venue)
        for event in events:
            self._emit_outcome(event, mark.ts_event)

    def _emit_outcome(self, event: OutcomeEvent, ts_ms: int) -> None:
        update = outcome_update(event, ts_ms)
        self._produce(self.topics.alerts, event.alert.asset, codec.encode(update))
        hit = "true" if event.outcome.hit else "false"
        self.metrics.outcomes.labels(str(event.outcome.horizon_min), hit).inc()

    def _png_source(self, alert: Alert) -> Callable[[], list[Attachment]] | None:
        ring = self.heatmaps.get(alert.asset)
        if not ring:
            return None
        start = alert.created_at - int(self.settings.heatmap_window_min * 60_000)
        snapshots = [s for s in ring if s.ts >= start]  # copied now: the ring keeps moving
        if not snapshots:
            return None

        def render() -> list[Attachment]:
            name = f"{alert.asset.lower()}-heatmap.png"
            return [Attachment(name, render_heatmap_png(snapshots, alert))]

        return render

    # --- output ------------------------------------------------------------------------

    def _publish_delivery(self, record: Delivery) -> None:
        self._produce(self.topics.deliveries, record.alert_id, codec.encode(record))

    def _dead_letter(self, topic: str, reason: str, raw: bytes) -> None:
        self.metrics.dead_letters.labels("alerter").inc()
        log.warning("dropped a message from %s: %s", topic, reason)
        letter = DeadLetter(
            source="alerter",
            venue="",
            channel=topic,
            reason=reason,
            raw=raw[:RAW_KEEP].decode("utf-8", "replace"),
            ts_recv=time.time_ns() // 1_000_000,
        )
        self._produce(self.topics.dlq, topic, codec.encode(letter))

    def _produce(self, topic: str, key: str, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=_log_failure)
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: wait for the broker

    # --- offsets and health --------------------------------------------------------------

    def _commit(self, final: bool = False) -> None:
        positions = self._offsets.positions()
        if not positions:
            return
        try:
            self._consumer.store_offsets(offsets=positions)
            if final:
                self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            # e.g. partitions revoked meanwhile: their next owner re-reads; ids dedupe
            log.info("offsets not stored: %s", exc)

    def _apply_backpressure(self, batch: int) -> None:
        """Pause ``liq.alerts`` while the dispatcher queue could not take a whole batch.

        The alerter waits rather than refusing: deliveries end within max_attempts × backoff,
        well inside Kafka's max.poll.interval, and consume() keeps being called meanwhile.
        """
        full = self.dispatcher.queue_free < batch
        if full == self._paused:
            return
        partitions = [tp for tp in self._consumer.assignment() if tp.topic == self.topics.alerts]
        if full:
            self._consumer.pause(partitions)
        else:
            self._consumer.resume(partitions)
        self._paused = full

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned = True
        self._paused = False  # a new assignment starts unpaused

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit()
        self._offsets.forget(partitions)

    def _live(self) -> tuple[bool, str]:
        idle = time.monotonic() - self._last_turn
        return (idle < 60, f"loop turned {idle:.1f} s ago")

    def _ready(self) -> tuple[bool, str]:
        if not self._assigned:
            return False, "waiting for a partition assignment"
        return True, "ok"


def _log_failure(err: KafkaError | None, _message: Message) -> None:
    if err is not None:
        log.error("kafka produce failed: %s", err)


def _producer_config(kafka: KafkaSettings) -> dict[str, Any]:
    return {
        "bootstrap.servers": kafka.bootstrap_servers,
        "client.id": f"{kafka.client_id}-alerter",
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 5,
        "partitioner": "murmur2_random",  # same partition for a key as the Java client
    }


def _consumer_config(settings: AlerterSettings) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "client.id": f"{settings.kafka.client_id}-alerter",
        "group.id": settings.group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,  # we store an offset once it is fully handled
        "session.timeout.ms": 10_000,
    }
