"""The worker's processing loop without the framework: merge, engine, outputs, snapshots, acks.

The Faust wiring (``processors/worker.py``) hands every source message to ``on_message`` and
calls ``on_tick`` periodically. Order of durability, so that a crash anywhere loses nothing:

1. envelopes are released by the merge (``processors/merge.py``) and processed; outputs go to
   the producer buffer at once;
2. when a snapshot is due, the producer is flushed first (every output of the processed
   envelopes is on the broker), then the per-asset snapshots are written to the state table;
3. only then are the processed envelopes acked; Faust flushes the producer (the snapshots)
   before it commits those offsets.

After a crash the worker resumes at the committed offsets (at or before the snapshot), skips
envelopes the restored snapshot already reflects and re-emits the outputs of the rest: the
same alert ids with the same content (the engine is deterministic), deduplicated downstream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from liqwatch import codec
from liqwatch.schema import Alert, AlertUpdate, DeadLetter, Envelope
from processors.flow import Flow
from processors.merge import FIRST, Added, CaughtUp, PartitionMerge, Pending
from processors.metrics import WorkerMetrics
from processors.runner import EngineRunner, Output, foreign_events

log = logging.getLogger(__name__)

MAX_RAW_CHARS = 64 * 1024  # a dead letter keeps at most this much of a huge message
# a topic-partition behind its end delivered nothing this long: read it again (Faust can drop
# fetched records: below its read offset, or when its flow stops mid-batch)
REWIND_AFTER_S = 3.0
STALL_WARN_S = 10.0  # ... and this long: warn, and say so on /readyz


class SourceMessage(Protocol):
    """What the pump needs of a Kafka message (Faust's Event has these through .message)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> codec.Headers | None: ...


@dataclass(frozen=True)
class Ports:
    """The framework-facing operations, injected by the wiring."""

    send_signal: Callable[[bytes, bytes], object]  # (key, value) into the producer buffer
    send_alert: Callable[[bytes, bytes], object]
    send_dead_letter: Callable[[bytes, bytes], object]
    flush: Callable[[], Awaitable[None]]  # wait until everything buffered is on the broker
    ack: Callable[[Any], object]  # ack one source event (its offset may be committed)
    caught_up: CaughtUp
    # why a topic-partition is not caught up (offsets), for the stall warning
    describe: Callable[[str, int], str] = lambda _t, _p: ""


@dataclass(frozen=True, slots=True)
class _Item:
    event: Any  # the framework's event, acked once a snapshot covers it
    # the envelope as it came: decoded only when the merge releases it, since decoded events
    # take about twice the memory of their JSON and the merge may hold ~100,000 of them
    raw: bytes
    error: str = ""  # why the message is not an envelope (it goes to the dead-letter topic)


class Pump:
    def __init__(
        self,
        runner: EngineRunner,
        merge: PartitionMerge[_Item],
        *,
        flow: Flow,
        state: Any,  # MutableMapping[bytes, bytes]: the Faust table
        ports: Ports,
        metrics: WorkerMetrics,
        snapshot_interval_s: float,
    ) -> None:
        self.runner = runner
        self.merge = merge
        self.flow = flow
        self.state = state
        self.ports = ports
        self.metrics = metrics
        self.snapshot_interval_s = snapshot_interval_s
        self._lock = asyncio.Lock()
        # (partition, framework event) processed and not yet covered by a save; the decoded
        # envelope is not kept: at stress rates a few seconds of envelopes are ~100 MB
        self._held: list[tuple[int, Any]] = []
        self._partition_of: dict[str, int] = {}  # assets restored (or found new) → partition
        self._last_save = time.monotonic()
        # topic-partitions behind their end: (next offset, unchanged since), last read again
        self._progress: dict[tuple[str, int], tuple[int, float]] = {}
        self._rewound_at: dict[tuple[str, int], float] = {}
        self._warned_at = 0.0
        self._stall = ""  # what has stopped coming for STALL_WARN_S or more
        self._forced_seen = 0
        # closed until ``begin``: before the state table is recovered, Faust may hand over
        # records (and drop others it fetched); none of them may reach the engine
        self._reading = False
        self._early = 0

    # --- entry points ---------------------------------------------------------------------

    async def begin(self, starts: Mapping[tuple[str, int], int]) -> None:
        """Starts reading the assigned topic-partitions at these offsets (committed or earliest).

        Called once the state table is recovered. Every topic-partition is fetched again from
        its start offset: Faust rewinds only those with a committed offset, and may already
        have fetched (and dropped) records of the others, which would never come again.
        """
        async with self._lock:
            parts = {partition for _topic, partition in starts}
            self._forget(parts)
            for (topic, partition), offset in starts.items():
                self.merge.expect(topic, partition, offset)
            await self.flow.rewind(dict(starts))
            self._reading = True
            self._progress, self._rewound_at = {}, {}
            log.info(
                "reading %d source topic-partitions from their start offsets "
                "(%.0f messages handed over before that were dropped, to be read again)",
                len(starts),
                self._early,
            )

    async def on_message(self, event: Any, message: SourceMessage) -> None:
        async with self._lock:
            if not self._reading:
                self.metrics.early.inc()
                self._early += 1
                return
            added = self.merge.add(_pending(event, message))
            if added is not Added.QUEUED:
                self.flow.added(added, message.topic, message.partition, message.offset)
                return
            self._drain(message.partition)
            await self.flow.update(message.partition)
            await self._maybe_save()

    async def on_tick(self) -> None:
        async with self._lock:
            self._drain()
            await self.flow.update()
            await self._maybe_save()
            await self._check_stall()
            self._gauges()  # per tick, not per message: a scrape comes every few seconds

    async def save_now(self) -> None:
        async with self._lock:
            self._drain()
            await self._save()

    async def reset(self, partitions: Iterable[int]) -> None:
        """Partitions were revoked: drop their queued envelopes and unsaved progress.

        Faust seeks every assigned partition back to its committed offset after a rebalance,
        so what was processed and not saved is read again and reprocessed from the snapshot.
        """
        async with self._lock:
            self._reading = False
            self._forget(set(partitions))
            self.flow.reset()
            self.metrics.rebalances.inc()
            self._gauges()

    def _forget(self, parts: set[int]) -> None:
        self.merge.forget(parts)
        self._held = [h for h in self._held if h[0] not in parts]
        gone = {a for a, p in self._partition_of.items() if p in parts}
        self.runner.forget(gone)
        for asset in gone:
            del self._partition_of[asset]

    @property
    def held(self) -> int:
        return len(self._held)

    def partition_of(self, key: bytes) -> int | None:
        """The source partition of an asset (state table key) seen since the last rebalance."""
        return self._partition_of.get(key.decode())

    # --- merge → engine → outputs ---------------------------------------------------------

    def _drain(self, partition: int | None = None) -> None:
        """Processes what the merge releases: of one partition, or of all of them."""
        for pending in self.merge.release(self.ports.caught_up, partition):
            self._held.append((pending.partition, pending.item.event))
            self._handle(pending)

    @property
    def stalled(self) -> str:
        """What the merge has waited for since STALL_WARN_S or more ("" when it flows)."""
        return self._stall

    async def _check_stall(self) -> None:
        """Reads again the topic-partitions that stopped delivering before their end.

        A topic-partition that is behind its high water mark, not paused, and whose next
        expected offset has not moved for REWIND_AFTER_S is read again from that offset: always
        safe (what comes twice is ignored), and it ends a wait for records the consumer dropped
        (Faust drops records below its read offset, which records fetched before a seek raise).
        Past STALL_WARN_S it is also logged at WARNING, shown on ``/readyz`` and in a metric.
        """
        now = time.monotonic()
        stuck: dict[tuple[str, int], tuple[int, float]] = {}
        for tp, offset in self.merge.reading().items():
            if tp in self.flow.paused or self.ports.caught_up(*tp):
                continue
            before = self._progress.get(tp)
            stuck[tp] = before if before is not None and before[0] == offset else (offset, now)
        self._progress = stuck
        due = sorted(
            tp
            for tp, (_offset, since) in stuck.items()
            if now - max(since, self._rewound_at.get(tp, 0.0)) >= REWIND_AFTER_S
        )
        if due:
            log.info("reading again what stopped coming: %s", self._describe(due))
            await self.flow.rewind({tp: stuck[tp][0] for tp in due})
            self._rewound_at.update(dict.fromkeys(due, now))
        waits = sorted(tp for tp, (_o, since) in stuck.items() if now - since >= STALL_WARN_S)
        if not waits:
            self._stall = ""
            self.metrics.merge_stalled.set(0)
            return
        longest = now - min(stuck[tp][1] for tp in waits)
        self._stall = self._describe(waits)
        self.metrics.merge_stalled.set(longest)
        if now - self._warned_at >= STALL_WARN_S:
            self._warned_at = now
            log.warning(
                "merge has waited %.0fs with %d envelopes queued, for: %s",
                longest,
                self.merge.buffered,
                self._stall,
            )

    def _describe(self, tps: Iterable[tuple[str, int]]) -> str:
        return ", ".join(f"{t}:{p} {self.ports.describe(t, p)}".strip() for t, p in tps)

    def _handle(self, pending: Pending[_Item]) -> None:
        item = pending.item
        envelope = _decoded(item)
        if isinstance(envelope, str):
            self._dead_letter(pending.topic, envelope, item.raw)
            return
        self._maybe_restore(envelope.asset, pending.partition)
        if self.runner.already_reflected(
            envelope.asset, pending.topic, pending.partition, pending.offset
        ):
            self.metrics.skipped.inc()
            return
        stray = foreign_events(envelope)
        if stray:
            reason = f"envelope for {envelope.asset} carries events of another asset"
            self._dead_letter(pending.topic, reason, codec.encode(envelope))
            return
        started = time.perf_counter()
        try:
            outputs = self.runner.handle(envelope, pending.topic, pending.partition, pending.offset)
        except Exception as exc:  # an engine bug must not stop the stream: keep the envelope
            log.exception("engine failed on an envelope for %s", envelope.asset)
            reason = f"engine error: {type(exc).__name__}: {exc}"
            self._dead_letter(pending.topic, reason, codec.encode(envelope))
            return
        self.metrics.process_seconds.observe(time.perf_counter() - started)
        self.metrics.envelopes.inc()
        self.metrics.events_of(envelope.kind.value).inc(len(envelope.events))
        key = envelope.asset.encode()
        for out in outputs:
            self._emit(key, out)
        for dead in self.runner.dead_letters():
            self._send_dead_letter(dead)

    def _emit(self, key: bytes, out: Output) -> None:
        value = codec.encode(out)
        if isinstance(out, Alert):
            self.metrics.alerts.labels(out.kind.value).inc()
            self.ports.send_alert(key, value)
        elif isinstance(out, AlertUpdate):
            self.metrics.alerts.labels("update").inc()
            self.ports.send_alert(key, value)
        else:
            self.metrics.signals.labels(type(out).__name__).inc()
            self.ports.send_signal(key, value)

    def _dead_letter(self, topic: str, reason: str, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace")
        log.warning("dead-lettered a message from %s: %s", topic, reason)
        dead = DeadLetter(
            source="worker",
            venue="",
            channel=topic,
            reason=reason,
            raw=text[:MAX_RAW_CHARS],
            ts_recv=int(time.time() * 1000),
        )
        self._send_dead_letter(dead)

    def _send_dead_letter(self, dead: DeadLetter) -> None:
        self.metrics.dead_letters.labels(dead.source).inc()
        self.ports.send_dead_letter(dead.venue.encode(), codec.encode(dead))

    def _maybe_restore(self, asset: str, partition: int) -> None:
        if asset in self._partition_of:
            return
        self._partition_of[asset] = partition
        saved = self.state.get(asset.encode())
        if not saved:
            return
        try:
            self.runner.restore(asset, saved)
        except (ValueError, msgspec.MsgspecError) as exc:  # corrupt, or another state version
            log.error("cannot restore %s, starting it from empty state: %s", asset, exc)
            self.metrics.restore_failures.inc()
            self._dead_letter("state", f"snapshot not restorable for {asset}: {exc}", b"")
            return
        self.metrics.restores.inc()
        log.info("restored engine state for %s", asset)

    # --- snapshots and acks ---------------------------------------------------------------

    async def _maybe_save(self) -> None:
        if time.monotonic() - self._last_save < self.snapshot_interval_s:
            return
        await self._save()

    async def _save(self) -> None:
        self._last_save = time.monotonic()
        if not self._held and not self.runner.dirty:
            return
        started = time.perf_counter()
        await self.ports.flush()  # outputs first: the snapshot makes their inputs skippable
        snaps = self.runner.take_snapshots()
        for asset, blob in snaps.items():
            self.state[asset.encode()] = blob
        held, self._held = self._held, []
        for _partition, event in held:  # no await here: Faust never commits half a save
            self.ports.ack(event)
        self.metrics.snapshots.inc(len(snaps))
        self.metrics.snapshot_seconds.observe(time.perf_counter() - started)
        self._gauges()

    def _gauges(self) -> None:
        forced = self.merge.forced - self._forced_seen
        if forced:
            self.metrics.merge_forced.inc(forced)
            self._forced_seen = self.merge.forced
        self.metrics.merge_buffered.set(self.merge.buffered)
        self.metrics.unacked.set(len(self._held))


def _pending(event: Any, message: SourceMessage) -> Pending[_Item]:
    """The message for the merge, ordered by its seal time: from the producer's headers, or
    from the body's head (the rest is decoded on release)."""
    raw = message.value or b""
    seal_and_size = codec.head_from_headers(message.headers)
    if seal_and_size is None:
        try:
            head = codec.envelope_head_decoder.decode(raw)
        except (codec.DecodeError, codec.ValidationError) as exc:
            item = _Item(event, raw, f"bad envelope: {exc}")
            return Pending(FIRST, message.topic, message.partition, message.offset, item)
        seal_and_size = head.ts_flush, len(head.events)
    seal, size = seal_and_size
    return Pending(seal, message.topic, message.partition, message.offset, _Item(event, raw), size)


def _decoded(item: _Item) -> Envelope | str:
    """The envelope, or why it cannot be processed."""
    if item.error:
        return item.error
    try:
        return codec.envelope_decoder.decode(item.raw)
    except (codec.DecodeError, codec.ValidationError) as exc:
        return f"bad envelope: {exc}"
