"""The sink's consume -> batch -> store -> commit loop: one consuming thread, writer threads.

Guarantees, in order of importance:

* Offsets are committed only after every row of the batch is stored, so a crash re-delivers
  rather than loses (at least once). ClickHouse's ReplacingMergeTree tables collapse the
  repeats; liquidations re-consumed right after an assignment are also checked against what
  is stored, so the 1-minute aggregates do not count them twice.
* Rows held in memory (the batch being stored plus the batch filling up) never exceed
  ``buffer_max_rows``: at the bound the partitions are paused, and messages fetched beyond it
  are rewound (seek) so they are consumed again later. Only a single message larger than the
  whole bound is let through, with a warning.
* Undecodable messages go to the dead-letter topic (tagged so sinks skip their own copies)
  and, with their offsets, into the ``dead_letters`` table in the same batch.

Market envelopes are only checked here (header, JSON, event count) and handed to ClickHouse
as the JSON they came in (``sinks.clickhouse.envelopes``); a batch the server refuses is
decoded by the writer, which dead-letters what msgspec refuses through ``_poison_envelope``.

Rebalancing uses the eager protocol: on revoke the loop stores and commits what it holds,
or, if ClickHouse does not answer within ``revoke_timeout_s``, drops it uncommitted for the
next owner to re-consume.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as KafkaPartition

from liqwatch import codec
from liqwatch.schema import DeadLetter
from sinks.batch import (
    Batch,
    PoisonError,
    RawEnvelope,
    Record,
    Role,
    TopicPartition,
    dead_letter,
    decode_head,
    decode_records,
    envelope_records,
    row_count,
)
from sinks.metrics import SinkMetrics
from sinks.settings import SinkSettings
from sinks.writer import BatchWriter, ClickHouseHealth, Job, WriteAbortedError

log = logging.getLogger(__name__)

ORIGIN_HEADER = "liqwatch-origin"
ORIGIN_SINK = b"sink"
_IDLE_PING_S = 5.0


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class InFlight:
    """A batch being stored, the writer storing it, and the result to wait for."""

    job: Job
    writer: BatchWriter
    future: Future[dict[str, int]]


class SinkLoop:
    def __init__(
        self,
        settings: SinkSettings,
        consumer: Consumer,
        producer: Callable[[], Producer],
        writers: Sequence[BatchWriter],
        metrics: SinkMetrics,
        *,
        roles: dict[str, Role],
        dlq_topic: str,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        # The dead-letter producer is made on the first poison message: most runs need none.
        self._make_producer = producer
        self._producer: Producer | None = None
        self._producer_lock = threading.Lock()  # writers dead-letter envelopes too
        self.metrics = metrics
        self.roles = roles
        self.dlq_topic = dlq_topic
        self.writers = list(writers)
        for writer in self.writers:
            writer.on_poison = self._poison_envelope
        # Market envelopes go to ClickHouse as JSON, parsed there (not by the embedded engine).
        self.parse_on_server = settings.parse_on_server and all(
            w.store.parses_envelopes for w in self.writers
        )
        self.writer = self.writers[0]  # also reads sink_offsets and pings when idle
        self.health: ClickHouseHealth = self.writer.health
        self.buffer = Batch()
        # Batches cut at batch_max_rows while every writer was busy, oldest first: the next
        # writer to free up finds one ready, and consuming goes on meanwhile.
        self.sealed: deque[Batch] = deque()
        self.inflight: deque[InFlight] = deque()
        self._submitted = 0
        self.assignment: set[TopicPartition] = set()
        self.committed: dict[TopicPartition, int] = {}
        self.pending_commit: dict[TopicPartition, int] = {}
        # From sink_offsets at assignment: offsets stored already (skipped), and the end of a
        # batch interrupted half-way (its liquidations are checked before insert).
        self.stored_through: dict[TopicPartition, int] = {}
        self.suspect_through: dict[TopicPartition, int] = {}
        # Fallback when sink_offsets could not be read: check this many rows per partition.
        self.replay_left: dict[TopicPartition, int] = {}
        self.paused = False
        self.heartbeat = time.monotonic()
        self._executor = ThreadPoolExecutor(len(self.writers), thread_name_prefix="sink-writer")
        self._next_lag = 0.0
        self._next_ping = 0.0
        self._retry_at = 0.0
        self._pinging: Future[None] | None = None
        # Set when fetched messages had to be given back: stay paused until a batch is stored,
        # instead of fetching the same messages again and again.
        self._blocked = False
        self._rows_per_message = 0.0  # running mean (0: none seen yet), sizes the next fetch
        self._full_since: float | None = None
        metrics.buffer_limit.set(settings.buffer_max_rows)

    # -- lifecycle -----------------------------------------------------------------------
    def run(self, stop: StopFlag) -> None:
        self.consumer.subscribe(
            list(self.roles),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.shutdown()

    def step(self) -> None:
        self.heartbeat = time.monotonic()
        self._reap()
        self._retry_commit()
        self._maybe_submit()
        if self._blocked or self._room() <= 0:
            self._wait_for_room()
        else:
            self._full_since = None
            self._set_paused(False)
            # Take what has arrived without waiting for a full fetch; block only when idle.
            messages = self.consumer.consume(self._fetch_size(), timeout=0)
            if not messages:
                messages = self.consumer.consume(1, timeout=0.1)
            self._take(messages)
        self._report()

    def _wait_for_room(self) -> None:
        """The buffer is full. For a moment just wait for a batch to be stored: the Kafka
        client keeps prefetching (within fetch_queue_kbytes), so consuming resumes at full
        speed. If it lasts (ClickHouse slow or down), pause the partitions and keep polling so
        the group sees a live member and rebalances are served."""
        now = time.monotonic()
        if self._full_since is None:
            self._full_since = now
        if self.inflight and now - self._full_since < self.settings.pause_after_s:
            self._wait_for_a_batch(0.05)
            return
        self._set_paused(True)
        self._wait_for_a_batch(0.05)
        self._take(self.consumer.consume(num_messages=1, timeout=0))

    def shutdown(self) -> None:
        """Store and commit what is held (bounded by revoke_timeout_s), then leave the group."""
        drained = self._drain(self.settings.revoke_timeout_s)
        if not drained:
            log.warning("shutdown: %d rows not stored; they will be re-consumed", self._held())
            self._abandon()
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("consumer close: %s", exc)
        if self._producer is not None:
            self._producer.flush(5.0)
        self._executor.shutdown(wait=True)

    # -- consuming -----------------------------------------------------------------------
    def _held(self) -> int:
        waiting = self.buffer.rows + sum(batch.rows for batch in self.sealed)
        return waiting + sum(flight.job.batch.rows for flight in self.inflight)

    def _room(self) -> int:
        return self.settings.buffer_max_rows - self._held()

    def _wait_for_a_batch(self, timeout: float) -> None:
        """Sleep until a batch in flight finishes (frees room) or ``timeout`` passes."""
        if self.inflight:
            wait([self.inflight[0].future], timeout=timeout, return_when=FIRST_COMPLETED)
        else:
            time.sleep(timeout)

    def _fetch_size(self) -> int:
        """How many messages to ask for: about what fits, so few have to be given back."""
        fits = int(self._room() / max(1.0, self._rows_per_message))
        return max(1, min(self.settings.poll_max_messages, fits))

    def _take(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        for index, msg in enumerate(messages):
            if not self._take_one(msg):
                self._rewind(messages[index:])
                return
            if self.buffer.rows >= self.settings.batch_max_rows:
                # Cut here, so batches stay at their configured size however much one
                # fetch brought, and hand it to a writer at once if one is free.
                self.sealed.append(self.buffer)
                self.buffer = Batch()
                self._maybe_submit()

    def _take_one(self, msg: Message) -> bool:
        """Add one message to the buffer; False when it does not fit (nothing taken)."""
        error = msg.error()
        if error is not None:
            self._consumer_error(error)
            return True
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is None or partition is None or offset is None:
            return True
        tp = (topic, partition)
        if offset <= self.stored_through.get(tp, -1):
            self.metrics.messages.labels(topic).inc()
            self.metrics.replayed_messages.inc()
            self.buffer.complete(topic, partition, offset)
            return True
        taken = self._records(msg, topic)
        rows = taken.rows if isinstance(taken, RawEnvelope) else row_count(taken)
        if rows > self._room() and self._held() > 0:
            return False
        if rows > self.settings.buffer_max_rows:
            log.warning(
                "message %s[%d]@%d has %d rows, more than the whole buffer bound",
                topic,
                partition,
                offset,
                rows,
            )
        suspect = offset <= self.suspect_through.get(tp, -1) or self._suspect(tp, rows)
        if isinstance(taken, RawEnvelope) and not suspect:
            self.buffer.add_envelope(taken)
        else:
            # Maybe stored already: decoded here so their event_ids can be checked.
            records = (
                envelope_records(taken, self._poison_envelope)
                if isinstance(taken, RawEnvelope)
                else taken
            )
            self.buffer.add(records, row_count(records), suspect=suspect)
        self.buffer.complete(topic, partition, offset)
        if self._rows_per_message:
            self._rows_per_message += (rows - self._rows_per_message) * 0.05
        else:
            self._rows_per_message = float(rows)
        self.metrics.messages.labels(topic).inc()
        self.metrics.set_buffer(self._held())
        return True

    def _records(self, msg: Message, topic: str) -> Sequence[Record] | RawEnvelope:
        role = self.roles[topic]
        if role is Role.DLQ and _from_sink(msg):
            return []  # a sink stored it already when it met the original message
        value = msg.value()
        try:
            if role is Role.MARKET and self.parse_on_server:
                return self._raw_envelope(msg, topic, value)
            return decode_records(role, value)
        except PoisonError as exc:
            letter = dead_letter(topic, msg.partition() or 0, msg.offset() or 0, value, str(exc))
            return [self._poison(letter, role, msg.key())]

    @staticmethod
    def _raw_envelope(msg: Message, topic: str, value: bytes | None) -> RawEnvelope:
        head = decode_head(value)
        key = msg.key()
        return RawEnvelope(
            head.kind,
            value or b"",
            len(head.events),
            topic,
            msg.partition() or 0,
            msg.offset() or 0,
            key.encode() if isinstance(key, str) else key,
        )

    def _poison_envelope(self, envelope: RawEnvelope, reason: str) -> DeadLetter:
        """A market message found undecodable (here or by a writer): counted, copied to the
        dead-letter topic, and returned to be stored in ``dead_letters``."""
        e = envelope
        letter = dead_letter(e.topic, e.partition, e.offset, e.value, reason)
        return self._poison(letter, Role.MARKET, e.key)

    def _poison(self, letter: DeadLetter, role: Role, key: bytes | str | None) -> DeadLetter:
        self.metrics.poison.labels(letter.channel).inc()
        log.warning("%s", letter.reason)
        if role is not Role.DLQ:
            self._produce_dead_letter(letter, key)
        return letter

    def _produce_dead_letter(self, letter: DeadLetter, key: bytes | str | None) -> None:
        try:
            self.producer().produce(
                self.dlq_topic,
                value=codec.encode(letter),
                key=key,
                headers=[(ORIGIN_HEADER, ORIGIN_SINK)],
                on_delivery=self._dlq_delivered,
            )
        except (BufferError, KafkaException) as exc:
            # The letter is stored in ClickHouse with this batch anyway; only the copy is lost.
            self.metrics.dlq_failures.inc()
            log.warning("dead letter not produced to %s: %s", self.dlq_topic, exc)
        else:
            self.metrics.dlq_messages.labels("sink").inc()
        self.producer().poll(0)

    def producer(self) -> Producer:
        with self._producer_lock:
            if self._producer is None:
                self._producer = self._make_producer()
            return self._producer

    def _dlq_delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self.metrics.dlq_failures.inc()
            log.warning("dead letter not delivered to %s: %s", self.dlq_topic, err)

    def _suspect(self, tp: TopicPartition, rows: int) -> bool:
        left = self.replay_left.get(tp, 0)
        if left <= 0:
            return False
        self.replay_left[tp] = left - rows
        return True

    def _rewind(self, messages: Sequence[Message]) -> None:
        """Give back fetched messages that did not fit: pause, and seek to the first of each."""
        self._set_paused(True)
        self._blocked = True
        first: dict[TopicPartition, int] = {}
        for msg in messages:
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if msg.error() is None and topic is not None and partition is not None:
                first.setdefault((topic, partition), offset if offset is not None else 0)
        for (topic, partition), offset in first.items():
            self.consumer.seek(KafkaPartition(topic, partition, offset))

    def _set_paused(self, paused: bool) -> None:
        if paused == self.paused:
            return
        parts = [KafkaPartition(t, p) for t, p in self.assignment]
        if parts:
            (self.consumer.pause if paused else self.consumer.resume)(parts)
        self.paused = paused
        self.metrics.paused.set(1 if paused else 0)

    def _consumer_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        log.warning("consumer: %s", error)

    # -- storing and committing ----------------------------------------------------------
    def _maybe_submit(self) -> None:
        if self.pending_commit or time.monotonic() < self._retry_at:
            return
        while self.sealed and self._writer_free():
            self._submit(self.sealed.popleft())
        if self.sealed or not self.buffer or not self._writer_free():
            return
        due = (
            self.buffer.rows >= self.settings.batch_max_rows
            or self.buffer.age(time.monotonic()) * 1000 >= self.settings.batch_max_ms
            or self._room() <= 0
            or self._blocked
        )
        if due:
            self._submit(self._cut())

    def _writer_free(self) -> bool:
        return len(self.inflight) < len(self.writers)

    def _cut(self) -> Batch:
        """The next batch to store: the oldest sealed one, else the one filling up."""
        if self.sealed:
            return self.sealed.popleft()
        batch, self.buffer = self.buffer, Batch()
        return batch

    def _submit(self, batch: Batch) -> None:
        job = Job(batch, uuid.uuid4().hex)
        # Round robin: a writer (and its connection) is reused only once the batch it stored
        # before was reaped, since batches are reaped in order and at most one per writer flies.
        writer = self.writers[self._submitted % len(self.writers)]
        self._submitted += 1
        self.inflight.append(InFlight(job, writer, self._executor.submit(writer.write, job)))

    def _reap(self) -> None:
        """Commit finished batches, oldest first (offsets must be committed in order)."""
        while self.inflight and self.inflight[0].future.done():
            flight = self.inflight.popleft()
            try:
                flight.future.result()
            except WriteAbortedError:
                continue  # only after _abandon(), whose callers reset the consumer position
            except Exception:
                # A bug, not ClickHouse: keep the rows and offsets, try again after a pause.
                log.exception("storing a batch failed unexpectedly; retrying it")
                self._retry_at = time.monotonic() + self.settings.retry_max_s
                retry = self._executor.submit(self._delayed_write, flight.writer, flight.job)
                self.inflight.appendleft(InFlight(flight.job, flight.writer, retry))
                return
            if not flight.job.orphaned:
                self._commit(flight.job.batch.offsets)
            self._blocked = False
        self.metrics.set_buffer(self._held())

    def _delayed_write(self, writer: BatchWriter, job: Job) -> dict[str, int]:
        if job.abort.wait(self.settings.retry_max_s):
            raise WriteAbortedError("stopped")
        return writer.write(job)

    def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        owned = {tp: o for tp, o in offsets.items() if tp in self.assignment}
        if not owned:
            return
        parts = [KafkaPartition(t, p, o) for (t, p), o in owned.items()]
        try:
            self.consumer.commit(offsets=parts, asynchronous=False)
        except KafkaException as exc:
            self.metrics.commit_failures.inc()
            log.warning("offset commit failed, retrying before the next batch: %s", exc)
            self.pending_commit.update(owned)
            return
        self.committed.update(owned)
        self.metrics.commits.inc()

    def _retry_commit(self) -> None:
        if self.pending_commit:
            pending, self.pending_commit = self.pending_commit, {}
            self._commit(pending)

    def _drain(self, timeout: float) -> bool:
        """Store and commit everything held; False if ClickHouse did not allow it in time."""
        deadline = time.monotonic() + timeout
        self._submit_held()
        while self.inflight:
            try:
                self.inflight[0].future.result(max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                return False
            except Exception:  # noqa: S110  (reported by _reap just below)
                pass
            self._reap()
            self._submit_held()
        self._retry_commit()
        held = self.inflight or self.sealed or self.buffer
        return not held and not self.pending_commit

    def _submit_held(self) -> None:
        while (self.sealed or self.buffer) and self._writer_free():
            self._submit(self._cut())

    def _abandon(self) -> None:
        """Forget what is held without committing it (the next owner re-consumes it)."""
        for flight in self.inflight:
            flight.job.orphaned = True
            flight.job.abort.set()
        self.inflight.clear()
        self.sealed.clear()
        self.buffer = Batch()
        self.pending_commit = {}
        self.metrics.set_buffer(0)

    # -- rebalancing ---------------------------------------------------------------------
    def _on_assign(self, _consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        tps = [(part.topic, part.partition) for part in partitions]
        self.assignment.update(tps)
        deadline = time.monotonic() + self.settings.revoke_timeout_s
        future = self._executor.submit(self.writer.load_progress, tps, deadline)
        try:
            progress = future.result(timeout=self.settings.revoke_timeout_s + 5)
        except FutureTimeout:
            progress = None
        if progress is None:
            log.warning(
                "sink_offsets unreadable: checking the first %d rows per partition",
                self.settings.replay_rows,
            )
            self.replay_left.update(dict.fromkeys(tps, self.settings.replay_rows))
        else:
            for tp, seen in progress.items():
                self.stored_through[tp] = seen.stored_through
                self.suspect_through[tp] = seen.interrupted_through
                if seen.interrupted_through >= 0:
                    log.info(
                        "%s[%d]: batches were started up to offset %d; liquidations read again "
                        "up to there are checked against the table",
                        *tp,
                        seen.interrupted_through,
                    )
        self.paused = False
        self.metrics.paused.set(0)
        log.info("assigned %d partitions", len(partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        if not self._drain(self.settings.revoke_timeout_s):
            log.warning("revoke: ClickHouse too slow, %d rows left to the next owner", self._held())
            self._abandon()
        self._forget(partitions)

    def _on_lost(self, _consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        log.warning("lost %d partitions; dropping %d held rows", len(partitions), self._held())
        self._abandon()
        self._forget(partitions)

    def _forget(self, partitions: list[KafkaPartition]) -> None:
        for part in partitions:
            tp = (part.topic, part.partition)
            self.assignment.discard(tp)
            self.replay_left.pop(tp, None)
            self.stored_through.pop(tp, None)
            self.suspect_through.pop(tp, None)
            self.committed.pop(tp, None)
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(part.topic, str(part.partition))
        self.paused = self._blocked = False
        self.metrics.paused.set(0)

    # -- reporting -----------------------------------------------------------------------
    def _report(self) -> None:
        now = time.monotonic()
        if now >= self._next_lag:
            self._next_lag = now + self.settings.lag_interval_s
            self._report_lag()
        idle = not self.inflight and not self.sealed and not self.buffer
        if idle and now >= self._next_ping and (self._pinging is None or self._pinging.done()):
            self._next_ping = now + _IDLE_PING_S
            self._pinging = self._executor.submit(self._ping)

    def _ping(self) -> None:
        try:
            self.writer.store.client.command("SELECT 1")
        except Exception as exc:
            self.health.failed(exc)
            self.metrics.clickhouse_up.set(0)
            return
        self.health.ok()
        self.metrics.clickhouse_up.set(1)

    def _report_lag(self) -> None:
        for topic, partition in self.assignment:
            lag = self._partition_lag(topic, partition)
            self.metrics.consumer_lag.labels(topic, str(partition)).set(lag)

    def _partition_lag(self, topic: str, partition: int) -> int:
        try:
            _low, high = self.consumer.get_watermark_offsets(
                KafkaPartition(topic, partition), cached=True
            )
        except KafkaException:
            return 0
        done = self.committed.get((topic, partition))
        if high < 0 or done is None:
            return 0
        return max(0, high - done)


def _from_sink(msg: Message) -> bool:
    headers = msg.headers() or ()
    pairs = headers.items() if isinstance(headers, dict) else headers
    return any(k == ORIGIN_HEADER and v == ORIGIN_SINK for k, v in pairs)


def is_alive(loop: SinkLoop, max_stall_s: float = 60.0) -> tuple[bool, str]:
    stall = time.monotonic() - loop.heartbeat
    if stall > max_stall_s:
        return False, f"sink loop stalled for {stall:.0f}s"
    return True, "ok"


def is_ready(loop: SinkLoop) -> tuple[bool, str]:
    if not loop.health.up:
        return False, f"ClickHouse unreachable: {loop.health.last_error or 'not checked yet'}"
    if not loop.assignment:
        return False, "no Kafka partitions assigned"
    return True, f"ok: {len(loop.assignment)} partitions"
