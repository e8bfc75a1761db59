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

Memory: fetches are sized in bytes, and a byte of mark prices spans far more event time than
a byte of liquidations, so while catching up a backlog the other topics run ahead of the
busiest one and wait here. ``flow_changes`` says which topic-partitions to pause so about
``max_events`` events wait at most (never one the merge waits for). As a last resort, beyond
four times that, the merge stops waiting and releases what it has; those releases are counted
(``forced``): their order, and so determinism, depends on fetch timing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

T = TypeVar("T")

FIRST = -1  # order of an item that must not wait for others (e.g. undecodable: no ts_flush)

CaughtUp = Callable[[str, int], bool]  # (topic, partition) -> nothing more to read there now
TopicPartition = tuple[str, int]
HARD_LIMIT_FACTOR = 4


class Added(Enum):
    QUEUED = "queued"
    DUPLICATE = "duplicate"  # an offset already added (redelivered after a seek)
    GAP = "gap"  # offsets were skipped: read again from ``next_offset``


@dataclass(frozen=True, slots=True)
class Pending(Generic[T]):
    order: int
    topic: str
    partition: int
    offset: int
    item: T
    size: int = 1  # events inside, for the memory bound


class PartitionMerge(Generic[T]):
    """Per-partition queues of the source topics and the merge rule (no framework here)."""

    def __init__(self, topics: Sequence[str], max_events: int = 1 << 62) -> None:
        # ties on ``order`` go to the topic listed first (mark prices before liquidations)
        self._rank = {topic: i for i, topic in enumerate(topics)}
        self.max_events = max_events
        self._queues: dict[int, dict[str, deque[Pending[T]]]] = {}
        self._next: dict[tuple[str, int], int] = {}
        self._buffered = 0
        self._events = 0
        self.forced = 0

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def buffered_events(self) -> int:
        return self._events

    def next_offset(self, topic: str, partition: int) -> int | None:
        """The offset after the last one added for this topic-partition (None: none yet)."""
        return self._next.get((topic, partition))

    def expect(self, topic: str, partition: int, offset: int) -> None:
        """Reading of this topic-partition starts at ``offset``: the first message must be it.

        Without it the first message of a topic-partition is taken as the start, so one that the
        consumer dropped before handing it over would go unnoticed (and the merge, which
        compares ``next_offset`` with the high water mark, would wait for it forever).
        """
        if topic not in self._rank:
            raise ValueError(f"{topic!r} is not a merged topic")
        if (topic, partition) in self._next:
            raise ValueError(f"{topic}:{partition} is already being read")
        self._next[(topic, partition)] = offset

    def reading(self) -> dict[TopicPartition, int]:
        """The next offset expected from every topic-partition being read."""
        return dict(self._next)

    def add(self, pending: Pending[T]) -> Added:
        """Queues a message that follows the last one added on its topic-partition."""
        if pending.topic not in self._rank:
            raise ValueError(f"{pending.topic!r} is not a merged topic")
        expected = self._next.get((pending.topic, pending.partition))
        if expected is not None and pending.offset < expected:
            return Added.DUPLICATE
        if expected is not None and pending.offset > expected:
            return Added.GAP
        queues = self._queues.setdefault(pending.partition, {})
        queues.setdefault(pending.topic, deque()).append(pending)
        self._next[(pending.topic, pending.partition)] = pending.offset + 1
        self._count(pending, 1)
        return Added.QUEUED

    def release(self, caught_up: CaughtUp, partition: int | None = None) -> list[Pending[T]]:
        """Everything that can be released now, in merge order per partition.

        With ``partition``, only that one's: a message changes nothing for the others, whose
        turn comes with their own messages (or a periodic call over all of them, for the high
        water marks that moved meanwhile).
        """
        out: list[Pending[T]] = []
        for p in self._partitions(partition):
            out += self._release_partition(p, caught_up)
        return out

    def waiting_for(
        self, caught_up: CaughtUp, partition: int | None = None
    ) -> list[tuple[str, int]]:
        """Topic-partitions the merge waits on: empty, not read to the end, others queued."""
        out: list[tuple[str, int]] = []
        for p in self._partitions(partition):
            queues = self._queues[p]
            if any(queues.values()):
                out += [
                    (topic, p)
                    for topic in self._rank
                    if not queues.get(topic) and not caught_up(topic, p)
                ]
        return out

    def flow_changes(
        self, caught_up: CaughtUp, paused: set[TopicPartition], partition: int | None = None
    ) -> tuple[set[TopicPartition], set[TopicPartition]]:
        """(to pause, to resume) so that about ``max_events`` events wait at most.

        Over the limit, the topic-partitions that run ahead (items queued) are paused; one the
        merge waits for is never held back, so the merge always makes progress. Below half the
        limit everything flows again. With ``partition``, only that partition's topics are
        paused or resumed for being ahead or waited for (as ``release``).
        """
        waiting = set(self.waiting_for(caught_up, partition))  # of ``partition`` alone if given
        resume = set(paused) if self._events < self.max_events // 2 else paused & waiting
        pause: set[TopicPartition] = set()
        if self._events > self.max_events:
            queued = {
                (t, p) for p in self._partitions(partition) for t, q in self._queues[p].items() if q
            }
            pause = queued - waiting - paused
        return pause, resume

    def _partitions(self, partition: int | None) -> list[int]:
        if partition is None:
            return sorted(self._queues)
        return [partition] if partition in self._queues else []

    def forget(self, partitions: Iterable[int]) -> list[Pending[T]]:
        """Drops the queues of revoked partitions; returns what was dropped."""
        dropped: list[Pending[T]] = []
        for partition in partitions:
            for queue in self._queues.pop(partition, {}).values():
                dropped += queue
            for key in [k for k in self._next if k[1] == partition]:
                del self._next[key]
        for pending in dropped:
            self._count(pending, -1)
        return dropped

    def _count(self, pending: Pending[T], sign: int) -> None:
        self._buffered += sign
        self._events += sign * pending.size

    def _release_partition(self, partition: int, caught_up: CaughtUp) -> list[Pending[T]]:
        queues = self._queues[partition]
        out: list[Pending[T]] = []
        while True:
            head = self._next_head(partition, queues, caught_up)
            if head is None:
                break
            out.append(queues[head.topic].popleft())
            self._count(head, -1)
        return out

    def _next_head(
        self, partition: int, queues: dict[str, deque[Pending[T]]], caught_up: CaughtUp
    ) -> Pending[T] | None:
        heads = [q[0] for q in queues.values() if q]
        first = next((h for h in heads if h.order == FIRST), None)
        if first is not None:
            return first
        if not heads:
            return None
        for topic in self._rank:
            if not queues.get(topic) and not caught_up(topic, partition):
                if self._events <= self.max_events * HARD_LIMIT_FACTOR:
                    return None  # an envelope may still come here that sorts first: wait
                self.forced += 1
                break
        return min(heads, key=lambda h: (h.order, self._rank[h.topic]))
