"""Flow control between Kafka and the merge: pause the topic-partitions that run ahead.

Fetches are sized in bytes and a byte of mark prices spans far more event time than a byte of
liquidations, so while a backlog is read the other topics run ahead of the busiest one and
wait in the merge. Past the merge's bound they are paused in aiokafka itself: Faust's own
``pause_partitions`` would drop the records of them it already fetched (it skips records of
inactive partitions), while aiokafka keeps its position and fetches them again on resume.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from processors.merge import Added, CaughtUp, PartitionMerge, TopicPartition
from processors.metrics import WorkerMetrics

log = logging.getLogger(__name__)

Change = Callable[[set[TopicPartition]], Awaitable[None]]
Seek = Callable[[dict[TopicPartition, int]], Awaitable[None]]


@dataclass(frozen=True)
class FlowPorts:
    pause: Change
    resume: Change
    seek: Seek  # the consumer's next fetch of each topic-partition starts at the given offset


class Flow:
    def __init__(
        self,
        merge: PartitionMerge[Any],
        caught_up: CaughtUp,
        ports: FlowPorts,
        metrics: WorkerMetrics,
    ) -> None:
        self.merge = merge
        self.caught_up = caught_up
        self.ports = ports
        self.metrics = metrics
        self.paused: set[TopicPartition] = set()

    def added(self, result: Added, topic: str, partition: int, offset: int) -> None:
        """What ``merge.add`` said about a message that it did not queue."""
        if result is Added.DUPLICATE:
            self.metrics.redelivered.inc()
        elif result is Added.GAP:
            # records the consumer fetched before a seek, or a gap left by records it dropped;
            # either way not queued: if the expected offset does not follow, the merge's stall
            # check reads the topic-partition again (seeking here, per stale message, would
            # re-raise Faust's read offset and get the re-read records dropped)
            expected = self.merge.next_offset(topic, partition)
            log.debug(
                "offset gap on %s:%d: got %d, expected %s", topic, partition, offset, expected
            )
            self.metrics.gaps.inc()

    async def rewind(self, positions: dict[TopicPartition, int]) -> None:
        """Fetches these topic-partitions again from the given offsets."""
        if positions:
            await self.ports.seek(positions)
            self.metrics.rewinds.inc(len(positions))

    async def update(self, partition: int | None = None) -> None:
        """Pauses and resumes as the merge's bound asks; with ``partition``, as far as the
        state of that partition's queues decides (see ``PartitionMerge.flow_changes``)."""
        if not self.paused and self.merge.buffered_events <= self.merge.max_events:
            return  # the usual case, checked per message: nothing to pause or resume
        pause, resume = self.merge.flow_changes(self.caught_up, self.paused, partition)
        if resume:
            await self.ports.resume(resume)
            self.paused -= resume
        if pause:
            await self.ports.pause(pause)
            self.paused |= pause
        self.metrics.paused.set(len(self.paused))

    def reset(self) -> None:
        """A rebalance gives aiokafka a new assignment: nothing is paused any more."""
        self.paused = set()
