"""Frames in, envelopes out: parse each frame, batch events per asset, publish to Kafka.

Used by every source of ``liqwatch produce`` (live venues, a recording, a synthetic scenario).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from liqwatch.schema import Envelope, Venue
from liqwatch.settings import KafkaSettings
from producers.base import ParseContext
from producers.envelopes import EnvelopeBatcher
from producers.instruments import InstrumentBook
from producers.kafka_publisher import KafkaPublisher
from producers.parsing import parse_frame
from producers.replay import iter_recording

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


class FramePublisher:
    def __init__(
        self,
        publisher: KafkaPublisher,
        producer_id: str,
        instruments: InstrumentBook | None = None,
        max_events: int = 500,
        max_delay_ms: int = 50,
    ) -> None:
        self.publisher = publisher
        self.batcher = EnvelopeBatcher(producer_id, max_events, max_delay_ms)
        self.instruments = instruments or InstrumentBook.default()
        self._contexts: dict[Venue, ParseContext] = {}
        self.stats = PublishStats()

    def on_frame(self, venue: Venue, channel: str, ts_recv: int, frame: bytes) -> None:
        self.stats.frames += 1
        ctx = self._contexts.get(venue)
        if ctx is None:
            ctx = self._contexts[venue] = ParseContext(instruments=self.instruments)
        result = parse_frame(venue, channel, frame, ts_recv, ctx)
        if result.dead_letter is not None:
            self.stats.dead_letters += 1
            reason = result.dead_letter.reason.split(":", 1)[0]
            self.stats.reasons[reason] = self.stats.reasons.get(reason, 0) + 1
            self.publisher.publish_dead_letter(result.dead_letter)
        now = _now_ms()
        for event in result.events:
            self.stats.events += 1
            full = self.batcher.add(event, now)
            if full is not None:
                self._send(full)
        for env in self.batcher.flush_due(now):
            self._send(env)
        self.publisher.poll()

    def idle(self) -> None:
        """The source has nothing waiting: flush everything so a quiet market pays no delay."""
        for env in self.batcher.flush_all(_now_ms()):
            self._send(env)

    def close(self, timeout_s: float = 30.0) -> PublishStats:
        self.idle()
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
) -> PublishStats:
    """Publishes a recording, as fast as possible or at ``speed``× the recorded pace."""
    frames = FramePublisher(KafkaPublisher(kafka), producer_id or f"replay:{path.name}")
    first_recv: int | None = None
    started = time.monotonic()
    for item in iter_recording(path):
        if not hasattr(item, "frame"):  # a malformed line comes back as a dead letter
            frames.stats.dead_letters += 1
            frames.publisher.publish_dead_letter(item)  # type: ignore[arg-type]
            continue
        if speed:
            first_recv = item.ts_recv if first_recv is None else first_recv
            wait = (item.ts_recv - first_recv) / 1000 / speed - (time.monotonic() - started)
            if wait > 0:
                frames.idle()
                sleep(wait)
        frames.on_frame(item.venue, item.channel, item.ts_recv, _frame_bytes(item.frame))
    return frames.close()


def _frame_bytes(frame: object) -> bytes:
    from liqwatch import codec  # noqa: PLC0415

    if isinstance(frame, str):
        return frame.encode()
    return codec.encode(frame)
