"""Deterministic merge of the market topics, partition by partition.

One asset's events arrive on three topics (liquidations, open interest, mark price) whose
partition number is the same (key = asset), and the engine's results depend on the order in
which it sees them. Faust interleaves topic-partitions in whatever order fetches complete, so
the worker does not feed envelopes in arrival order: it queues them per topic-partition and
releases, per partition, the head with the smallest ``order`` (the envelope's ``ts_flush``, the
producer's seal time) among the three queues, and only when every other queue has a head to
compare with or has nothing more to deliver (its partition is read up to the broker's high
water mark). Given the same topic contents and the same start offsets, the released sequence is
always the same, whatever the fetch timing: a restart from committed offsets replays exactly
what an uninterrupted worker would have done from that point.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

FIRST = -1  # order of an item that must not wait for others (e.g. undecodable: no ts_flush)

CaughtUp = Callable[[str, int], bool]  # (topic, partition) -> nothing more to read there now


@dataclass(frozen=True, slots=True)
class Pending(Generic[T]):
    order: int
    topic: str
    partition: int
    offset: int
    item: T


class PartitionMerge(Generic[T]):
    """Per-partition queues of the source topics and the merge rule (no framework here)."""

    def __init__(self, topics: Sequence[str]) -> None:
        # ties on ``order`` go to the topic listed first (mark prices before liquidations)
        self._rank = {topic: i for i, topic in enumerate(topics)}
        self._queues: dict[int, dict[str, deque[Pending[T]]]] = {}
        self._next: dict[tuple[str, int], int] = {}
        self._buffered = 0

    @property
    def buffered(self) -> int:
        return self._buffered

    def next_offset(self, topic: str, partition: int) -> int | None:
        """The offset after the last one added for this topic-partition (None: none yet)."""
        return self._next.get((topic, partition))

    def add(self, pending: Pending[T]) -> bool:
        """Queues a message; False (and nothing queued) for an offset already added."""
        if pending.topic not in self._rank:
            raise ValueError(f"{pending.topic!r} is not a merged topic")
        seen = self._next.get((pending.topic, pending.partition))
        if seen is not None and pending.offset < seen:
            return False
        queues = self._queues.setdefault(pending.partition, {})
        queues.setdefault(pending.topic, deque()).append(pending)
        self._next[(pending.topic, pending.partition)] = pending.offset + 1
        self._buffered += 1
        return True

    def release(self, caught_up: CaughtUp) -> list[Pending[T]]:
        """Everything that can be released now, in merge order per partition."""
        out: list[Pending[T]] = []
        for partition in sorted(self._queues):
            out += self._release_partition(partition, caught_up)
        return out

    def waiting_for(self, caught_up: CaughtUp) -> list[tuple[str, int]]:
        """Topic-partitions the merge waits on: empty, not read to the end, others queued."""
        return [
            (topic, partition)
            for partition, queues in sorted(self._queues.items())
            if any(queues.values())
            for topic in self._rank
            if not queues.get(topic) and not caught_up(topic, partition)
        ]

    def queued_topics(self) -> list[tuple[str, int]]:
        """Topic-partitions with items waiting (candidates for pausing the fetch)."""
        return [
            (topic, partition)
            for partition, queues in self._queues.items()
            for topic, queue in queues.items()
            if queue
        ]

    def forget(self, partitions: Iterable[int]) -> list[Pending[T]]:
        """Drops the queues of revoked partitions; returns what was dropped."""
        dropped: list[Pending[T]] = []
        for partition in partitions:
            for queue in self._queues.pop(partition, {}).values():
                dropped += queue
            for key in [k for k in self._next if k[1] == partition]:
                del self._next[key]
        self._buffered -= len(dropped)
        return dropped

    def _release_partition(self, partition: int, caught_up: CaughtUp) -> list[Pending[T]]:
        queues = self._queues[partition]
        out: list[Pending[T]] = []
        while True:
            head = self._next_head(partition, queues, caught_up)
            if head is None:
                break
            out.append(queues[head.topic].popleft())
        self._buffered -= len(out)
        return out

    def _next_head(
        self, partition: int, queues: dict[str, deque[Pending[T]]], caught_up: CaughtUp
    ) -> Pending[T] | None:
        heads = [q[0] for q in queues.values() if q]
        first = next((h for h in heads if h.order == FIRST), None)
        if first is not None:
            return first
        for topic in self._rank:
            if not queues.get(topic) and not caught_up(topic, partition):
                return None  # an envelope may still come here that sorts first: wait
        return min(heads, key=lambda h: (h.order, self._rank[h.topic]), default=None)
