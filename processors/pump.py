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
from collections.abc import Awaitable, Callable, Iterable
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
STALL_WARN_S = 10.0  # the merge waited this long for a topic-partition: say which


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


@dataclass(frozen=True)
class Ports:
    """The framework-facing operations, injected by the wiring."""

    send_signal: Callable[[bytes, bytes], object]  # (key, value) into the producer buffer
    send_alert: Callable[[bytes, bytes], object]
    send_dead_letter: Callable[[bytes, bytes], object]
    flush: Callable[[], Awaitable[None]]  # wait until everything buffered is on the broker
    ack: Callable[[Any], Awaitable[None]]  # ack one source event (its offset may be committed)
    caught_up: CaughtUp
    # why a topic-partition is not caught up (offsets), for the stall warning
    describe: Callable[[str, int], str] = lambda _t, _p: ""


@dataclass(frozen=True, slots=True)
class _Item:
    event: Any  # the framework's event, acked once a snapshot covers it
    envelope: Envelope | None
    error: str = ""
    raw: bytes = b""  # kept only for what goes to the dead-letter topic


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
        self._last_release = time.monotonic()
        self._forced_seen = 0

    # --- entry points ---------------------------------------------------------------------

    async def on_message(self, event: Any, message: SourceMessage) -> None:
        async with self._lock:
            added = self.merge.add(_pending(event, message))
            if added is not Added.QUEUED:
                self.flow.added(added, message.topic, message.partition, message.offset)
                return
            self._drain()
            await self.flow.update()
            await self._maybe_save()

    async def on_tick(self) -> None:
        async with self._lock:
            self._drain()
            await self.flow.update()
            await self._maybe_save()
            self._warn_if_stalled()

    async def save_now(self) -> None:
        async with self._lock:
            self._drain()
            await self._save()

    async def reset(self, partitions: Iterable[int]) -> None:
        """Partitions were revoked: drop their queued envelopes and unsaved progress.

        Faust seeks every assigned partition back to its committed offset after a rebalance,
        so what was processed and not saved is read again and reprocessed from the snapshot.
        """
        parts = set(partitions)
        async with self._lock:
            self.merge.forget(parts)
            self._held = [h for h in self._held if h[0] not in parts]
            gone = {a for a, p in self._partition_of.items() if p in parts}
            self.runner.forget(gone)
            for asset in gone:
                del self._partition_of[asset]
            self.flow.reset()
            self.metrics.rebalances.inc()
            self._gauges()

    @property
    def held(self) -> int:
        return len(self._held)

    def partition_of(self, key: bytes) -> int | None:
        """The source partition of an asset (state table key) seen since the last rebalance."""
        return self._partition_of.get(key.decode())

    # --- merge → engine → outputs ---------------------------------------------------------

    def _drain(self) -> None:
        released = self.merge.release(self.ports.caught_up)
        for pending in released:
            self._held.append((pending.partition, pending.item.event))
            self._handle(pending)
        if released or not self.merge.buffered:
            self._last_release = time.monotonic()
        self._gauges()

    def _warn_if_stalled(self) -> None:
        waited = time.monotonic() - self._last_release
        if waited < STALL_WARN_S:
            return
        waits = [
            f"{t}:{p} {self.ports.describe(t, p)}".strip()
            for t, p in self.merge.waiting_for(self.ports.caught_up)
        ]
        log.warning(
            "merge has waited %.0fs with %d envelopes queued, for: %s",
            waited,
            self.merge.buffered,
            ", ".join(waits) or "nothing (bug)",
        )
        self._last_release = time.monotonic()

    def _handle(self, pending: Pending[_Item]) -> None:
        item = pending.item
        envelope = item.envelope
        if envelope is None:
            self._dead_letter(pending.topic, item.error, item.raw)
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
        self.metrics.events.labels(envelope.kind.value).inc(len(envelope.events))
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
        for _partition, event in held:  # no await suspends here: Faust never commits half a save
            await self.ports.ack(event)
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
    raw = message.value or b""
    try:
        envelope = codec.envelope_decoder.decode(raw)
    except (codec.DecodeError, codec.ValidationError) as exc:
        item = _Item(event, None, f"bad envelope: {exc}", raw)
        return Pending(FIRST, message.topic, message.partition, message.offset, item)
    item = _Item(event, envelope)
    size = len(envelope.events)
    return Pending(envelope.ts_flush, message.topic, message.partition, message.offset, item, size)
