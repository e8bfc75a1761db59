"""The Kafka lookups the worker makes outside Faust: start offsets and required topics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from liqwatch.settings import KafkaSettings
from liqwatch.topics import Topics

log = logging.getLogger(__name__)


class StartOffsets:
    """Where reading starts for each assigned source topic-partition: committed, or earliest.

    Looked up outside Faust once the state table is recovered; the worker then fetches every
    topic-partition again from there (Faust itself rewinds only those with a commit > 0).
    """

    RETRY_S = 1.0

    def __init__(self, bootstrap: str, group_id: str) -> None:
        self._config = {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "enable.auto.commit": False,
        }

    async def lookup(self, tps: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Every requested start offset; retries (logged) until the broker answers for all."""
        wanted = sorted(tps)
        found: dict[tuple[str, int], int] = {}
        while True:
            missing = [tp for tp in wanted if tp not in found]
            if not missing:
                return found
            try:
                found.update(await asyncio.to_thread(self._lookup, missing))
            except KafkaException as exc:
                log.warning("could not look up start offsets (will retry): %s", exc)
            if len(found) < len(wanted):
                await asyncio.sleep(self.RETRY_S)

    def _lookup(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        consumer = Consumer(self._config)
        try:
            committed = consumer.committed([TopicPartition(t, p) for t, p in tps], timeout=15)
            out: dict[tuple[str, int], int] = {}
            for tp in committed:
                if tp.error is not None:
                    log.warning(
                        "start offset of %s:%d unknown: %s", tp.topic, tp.partition, tp.error
                    )
                    continue
                low, _high = consumer.get_watermark_offsets(tp, timeout=15)
                out[(tp.topic, tp.partition)] = max(tp.offset, low)
            return out
        finally:
            consumer.close()


class MissingTopicsError(RuntimeError):
    """Output topics that do not exist: the worker would crash on its first send."""


def require_output_topics(kafka: KafkaSettings, timeout_s: float = 30.0) -> None:
    """Fails fast with a clear message when the topics the worker writes are missing.

    Faust declares the source and changelog topics itself, not the outputs; a broker that
    auto-creates them would pick its default partition count and break key co-partitioning.
    """
    topics = Topics(kafka.topic_prefix)
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise MissingTopicsError(f"cannot list topics on {kafka.bootstrap_servers}: {exc}") from exc
    missing = [t for t in (topics.signals, topics.alerts, topics.dlq) if t not in existing]
    if missing:
        raise MissingTopicsError(
            f"missing Kafka topics {missing}: create them first (liqwatch topics create)"
        )
