"""Frames in, envelopes out: parse each frame, batch events per asset, publish to Kafka.

Used by every source of ``liqwatch produce`` (live venues, a recording, a synthetic scenario).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from liqwatch.schema import DeadLetter, Envelope, Venue
from liqwatch.settings import KafkaSettings
from producers.envelopes import MAX_DELAY_MS, MAX_EVENTS, EnvelopeBatcher
from producers.instruments import InstrumentBook
from producers.kafka_publisher import KafkaPublisher
from producers.metrics import ProducerMetrics
from producers.parsing import FrameParser
from producers.replay import iter_recording

DEDUPE_CAPACITY = 100_000  # recent event ids: a reconnect that replays frames sends nothing twice
STATS_FLUSH_S = 1.0

log = logging.getLogger(__name__)


@dataclass
class PublishStats:
    frames: int = 0
    events: int = 0
    envelopes: int = 0
    dead_letters: int = 0
    undelivered: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.undelivered == 0

    def describe(self) -> str:
        return (
            f"frames={self.frames} events={self.events} envelopes={self.envelopes} "
            f"dead_letters={self.dead_letters} undelivered={self.undelivered}"
        )


def _now_ms() -> int:
    return int(time.time() * 1000)


def metered_publisher(kafka: KafkaSettings, metrics: ProducerMetrics) -> KafkaPublisher:
    """A publisher whose delivery reports feed the producer metrics."""

    def on_delivery(ok: bool, seconds: float) -> None:
        if ok:
            metrics.delivered.inc()
            metrics.produce_latency.observe(seconds)
        else:
            metrics.delivery_errors.inc()

    return KafkaPublisher(kafka, on_delivery)


class FramePublisher:
    def __init__(
        self,
        publisher: KafkaPublisher,
        producer_id: str,
        metrics: ProducerMetrics | None = None,
        instruments: InstrumentBook | None = None,
        max_events: int = MAX_EVENTS,
        max_delay_ms: int = MAX_DELAY_MS,
    ) -> None:
        self.publisher = publisher
        self.batcher = EnvelopeBatcher(producer_id, max_events, max_delay_ms)
        self.parser = FrameParser(instruments, dedupe_capacity=DEDUPE_CAPACITY)
        self.metrics = metrics or ProducerMetrics(CollectorRegistry())
        self.stats = PublishStats()
        self._stats_flushed = time.monotonic()

    def on_frame(self, venue: Venue, channel: str, ts_recv: int, frame: bytes) -> None:
        self.stats.frames += 1
        result = self.parser.parse(venue, channel, frame, ts_recv)
        if result.dead_letter is not None:
            self.stats.dead_letters += 1
            reason = result.dead_letter.reason.split(":", 1)[0]
            self.stats.reasons[reason] = self.stats.reasons.get(reason, 0) + 1
            self.metrics.dlq_messages.labels("producer").inc()
            self.publisher.publish_dead_letter(result.dead_letter)
        if time.monotonic() - self._stats_flushed >= STATS_FLUSH_S:
            self._flush_stats()
        now = _now_ms()
        for event in result.events:
            self.stats.events += 1
            full = self.batcher.add(event, now)
            if full is not None:
                self._send(full)
                for more in self.batcher.take_ready():
                    self._send(more)
        for env in self.batcher.flush_due(now):
            self._send(env)
        self.publisher.poll()

    def idle(self) -> None:
        """The source has nothing waiting: flush everything so a quiet market pays no delay."""
        for env in self.batcher.flush_all(_now_ms()):
            self._send(env)

    def _flush_stats(self) -> None:
        self.parser.stats.flush(self.metrics)
        self._stats_flushed = time.monotonic()

    def close(self, timeout_s: float = 30.0) -> PublishStats:
        self.idle()
        self._flush_stats()
        self.stats.undelivered = self.publisher.flush(timeout_s)
        return self.stats

    def _send(self, envelope: Envelope) -> None:
        self.stats.envelopes += 1
        self.publisher.publish(envelope)


def publish_recording(
    path: Path,
    kafka: KafkaSettings,
    speed: float | None = None,
    producer_id: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    metrics: ProducerMetrics | None = None,
) -> PublishStats:
    """Publishes a recording, as fast as possible or at ``speed``× the recorded pace."""
    metrics = metrics or ProducerMetrics(CollectorRegistry())
    frames = FramePublisher(
        metered_publisher(kafka, metrics), producer_id or f"replay:{path.name}", metrics
    )
    first_recv: int | None = None
    started = time.monotonic()
    for item in iter_recording(path):
        if isinstance(item, DeadLetter):  # a malformed line of the recording
            frames.stats.dead_letters += 1
            frames.publisher.publish_dead_letter(item)
            continue
        if speed:
            first_recv = item.ts_recv if first_recv is None else first_recv
            wait = (item.ts_recv - first_recv) / 1000 / speed - (time.monotonic() - started)
            if wait > 0:
                frames.idle()
                sleep(wait)
        frames.on_frame(Venue(item.venue), item.channel, item.ts_recv, frame_bytes(item.frame))
    return frames.close()


def frame_bytes(frame: object) -> bytes:
    """A recorded frame back to the bytes the venue sent (JSON, or a text frame as is)."""
    from liqwatch import codec  # noqa: PLC0415

    if isinstance(frame, str):
        return frame.encode()
    return codec.encode(frame)
