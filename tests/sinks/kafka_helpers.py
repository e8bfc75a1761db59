"""Producing test input to the real broker and running the sink against it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from liqwatch import codec
from liqwatch.settings import ClickHouseSettings, KafkaSettings, ObservabilitySettings
from liqwatch.topics import Topics
from sinks.service import run_sink
from sinks.settings import SinkSettings


def producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})


def produce(bootstrap: str, topic: str, records: Iterable[Any], key: str = "BTC") -> int:
    """Encode and produce every record (one message each); return how many were sent."""
    out = producer(bootstrap)
    count = 0
    for record in records:
        value = record if isinstance(record, bytes) else codec.encode(record)
        out.produce(topic, value=value, key=key)
        count += 1
    assert out.flush(30) == 0, "test input not fully produced"
    return count


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def sink_settings(
    bootstrap: str, topics: Topics, clickhouse: ClickHouseSettings, **overrides: Any
) -> SinkSettings:
    values: dict[str, Any] = {
        "group_id": f"sink-test-{uuid.uuid4().hex[:8]}",
        "batch_max_ms": 200,
        "metrics_port": 0,
        "session_timeout_ms": 6_000,
        "retry_initial_s": 0.2,
        "retry_max_s": 2.0,
        "lag_interval_s": 0.5,
        "kafka": KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topics.prefix),
        "clickhouse": clickhouse,
        "observability": ObservabilitySettings(metrics_host="127.0.0.1"),
    }
    values.update(overrides)
    return SinkSettings(**values)


@dataclass
class RunningSink:
    settings: SinkSettings
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    stop: threading.Event = field(default_factory=threading.Event)
    error: list[BaseException] = field(default_factory=list)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@contextmanager
def running_sink(settings: SinkSettings) -> Iterator[RunningSink]:
    """run_sink in a thread; stopped (cleanly) and joined on exit; its errors re-raised."""
    sink = RunningSink(settings)

    def target() -> None:
        try:
            run_sink(settings, sink.stop, sink.registry)
        except BaseException as exc:
            sink.error.append(exc)
            raise

    thread = threading.Thread(target=target, name="sink-under-test", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        sink.stop.set()
        thread.join(60)
        assert not thread.is_alive(), "sink did not stop within 60s"
    if sink.error:
        raise sink.error[0]


def committed_offsets(bootstrap: str, group_id: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id})
    try:
        parts = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=10
        )
        return [p.offset for p in parts]
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "end-offsets"})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        ]
    finally:
        consumer.close()


def all_committed(bootstrap: str, group: str, topic: str, partitions: int) -> bool:
    """The group's committed offset is the end of every non-empty partition of the topic."""
    ends = end_offsets(bootstrap, topic, partitions)
    done = committed_offsets(bootstrap, group, topic, partitions)
    return all(end in (0, got) for end, got in zip(ends, done, strict=True))
