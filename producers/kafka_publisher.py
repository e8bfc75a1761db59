"""Publishes envelopes and dead letters to Kafka with an idempotent confluent-kafka producer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from liqwatch import codec
from liqwatch.schema import DeadLetter, Envelope
from liqwatch.settings import KafkaSettings
from liqwatch.topics import Topics

log = logging.getLogger(__name__)

DeliveryHook = Callable[[bool, float], None]  # (ok, seconds since produce)


def producer_config(settings: KafkaSettings) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": f"{settings.client_id}-producer",
        "enable.idempotence": True,  # implies acks=all and ordered retries
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 5,
        # murmur2 like the Java client and aiokafka (Faust), so key=asset lands on the same
        # partition number in every topic whoever produced it
        "partitioner": "murmur2_random",
        "batch.num.messages": 10_000,
        "queue.buffering.max.kbytes": 262_144,
    }


class KafkaPublisher:
    def __init__(self, settings: KafkaSettings, on_delivery: DeliveryHook | None = None) -> None:
        self.topics = Topics(settings.topic_prefix)
        self._producer = Producer(producer_config(settings))
        self._on_delivery = on_delivery
        self.delivered = 0
        self.failed = 0

    def publish(self, envelope: Envelope) -> None:
        topic = self.topics.for_kind(envelope.kind)
        value = codec.encode(envelope)
        self._send(topic, envelope.asset, value, codec.envelope_headers(envelope))

    def publish_dead_letter(self, dead: DeadLetter) -> None:
        self._send(self.topics.dlq, dead.venue, codec.encode(dead))

    def publish_raw(self, topic: str, key: str, value: bytes) -> None:
        self._send(topic, key, value)

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> int:
        """Waits for outstanding deliveries; returns how many are still undelivered."""
        remaining: int = self._producer.flush(timeout_s)
        return remaining

    def _send(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: list[tuple[str, codec.HeaderValue]] | None = None,
    ) -> None:
        sent_at = time.perf_counter()

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            ok = err is None
            if ok:
                self.delivered += 1
            else:
                self.failed += 1
                log.error("kafka delivery to %s failed: %s", topic, err)
            if self._on_delivery is not None:
                self._on_delivery(ok, time.perf_counter() - sent_at)

        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=on_delivery
                )
                return
            except BufferError:
                # local queue full: back-pressure instead of an unbounded buffer
                self._producer.poll(0.05)
