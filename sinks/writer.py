"""Stores one batch in ClickHouse: one insert per table, retried with backoff until it lands.

Order per batch: record its offset ranges as 'started' in ``sink_offsets``, insert every
table; the loop commits the Kafka offsets afterwards, in batch order. A crash between the
inserts and the commit leaves 'started' ranges the committed offsets have not passed: their
liquidations are checked against the table when they are read again (``sinks.loop``). No
'stored' record is written: it only spared that check, and cost a ClickHouse insert per batch
(a fifth of an envelope insert's server CPU on the local server).
Transient failures (server down, timeouts) are retried with the batch's dedupe token, so an
insert that landed before its answer was lost is dropped by ClickHouse the second time. Rows
ClickHouse refuses as data (a value out of range for its column) are isolated by bisection
and stored as dead letters, so one bad record never blocks the stream. Market envelopes are
inserted as JSON for the server to parse; if it refuses them they are decoded here and take
the record path (undecodable ones become dead letters).
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from liqwatch import codec
from liqwatch.schema import DeadLetter, EventKind, Liquidation
from sinks.batch import (
    Batch,
    RawEnvelope,
    Record,
    build_rows,
    dead_letter,
    envelope_records,
    table_of,
)
from sinks.clickhouse.envelopes import ENVELOPE_TABLES
from sinks.clickhouse.rows import TableRows
from sinks.clickhouse.store import Store
from sinks.metrics import SinkMetrics
from sinks.progress import (
    STARTED,
    PartitionProgress,
    TopicPartition,
    load_progress,
    progress_rows,
)

log = logging.getLogger(__name__)

# ClickHouse error codes that mean "this data does not fit", not "try again later".
_DATA_ERROR_CODES = frozenset({6, 27, 32, 38, 41, 53, 69, 70, 72, 117, 131, 190, 321, 407})
_FUNCTION_THROW_IF_VALUE_IS_NON_ZERO = 395  # the envelope checks' throwIf
# "Try again later": timeouts, overload, memory, parts, read-only replica, cancelled, network.
_TRANSIENT_CODES = frozenset({159, 164, 202, 209, 210, 236, 241, 242, 252, 319, 394, 425, 999})
_UNKNOWN_ERROR_TRIES = 5


# Called for a message that turns out undecodable in a writer: returns its dead letter (the
# loop also counts it and copies it to the dead-letter topic).
PoisonHandler = Callable[[RawEnvelope, str], DeadLetter]


def _letter_only(envelope: RawEnvelope, reason: str) -> DeadLetter:
    return dead_letter(envelope.topic, envelope.partition, envelope.offset, envelope.value, reason)


class WriteAbortedError(RuntimeError):
    """Retrying stopped (shutdown or rebalance) before the batch was stored."""


def is_data_error(exc: BaseException) -> bool:
    if isinstance(exc, (TypeError, OverflowError, struct.error, DataError)):
        return True
    if isinstance(exc, ValueError) and not isinstance(exc, DatabaseError):
        return True
    return isinstance(exc, DatabaseError) and getattr(exc, "code", None) in _DATA_ERROR_CODES


def refused_data(exc: BaseException) -> bool:
    """The server refused the envelopes' content (a check failed, or the JSON does not fit)."""
    return is_data_error(exc) or getattr(exc, "code", None) == _FUNCTION_THROW_IF_VALUE_IS_NON_ZERO


def _fall_back(exc: BaseException, doubtful: int) -> bool:
    """Decode the envelopes here instead of retrying the server's parse?

    ``doubtful``: failed attempts so far, after which the rows may have landed under the
    token (so a fallback, under another token, could store them twice). Yes when the server
    refused their content. Not while it is unreachable or on overload, timeouts or memory
    limits: those are retried. An error of neither kind falls back at once if no earlier
    attempt may have landed, else only after a few more tries (a rare pair: an unanswered
    insert, then an unknown refusal), so that a batch never waits forever.
    """
    code = getattr(exc, "code", None)
    if isinstance(exc, OperationalError) or code in _TRANSIENT_CODES:
        return False
    if refused_data(exc):
        return True
    if code is None:  # an HTTP failure without a server code (a proxy?): it may have landed
        return doubtful >= _UNKNOWN_ERROR_TRIES
    return doubtful == 0 or doubtful >= _UNKNOWN_ERROR_TRIES


@dataclass
class ClickHouseHealth:
    """What the sink last saw of ClickHouse, for /readyz and the up gauge."""

    up: bool = False
    last_error: str = ""
    changed: float = field(default_factory=time.monotonic)

    def ok(self) -> None:
        if not self.up:
            self.up, self.changed = True, time.monotonic()

    def failed(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.up:
            self.up, self.changed = False, time.monotonic()


@dataclass
class Job:
    batch: Batch
    token: str
    abort: threading.Event = field(default_factory=threading.Event)
    orphaned: bool = False  # partitions were lost while it ran: do not commit its offsets


class BatchWriter:
    def __init__(
        self,
        store: Store,
        metrics: SinkMetrics,
        health: ClickHouseHealth,
        group_id: str,
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.health = health
        self.group_id = group_id
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.on_poison: PoisonHandler = _letter_only

    def write(self, job: Job) -> dict[str, int]:
        """Store every table of the batch; return rows stored per table."""
        started = time.perf_counter()
        ranges = job.batch.ranges()
        self._record_started(ranges, job)
        records = dict(job.batch.records)
        if job.batch.suspect_ids and records["liquidations"]:
            records["liquidations"] = self._drop_stored(records["liquidations"], job)
        stored = {}
        for table, recs in records.items():
            if recs:
                stored[table] = self._store(table, recs, job.token, job.abort)
        for kind, envelopes in job.batch.envelopes.items():
            table = ENVELOPE_TABLES[kind][0]
            rows = self._store_envelopes(kind, envelopes, job.token, job.abort)
            stored[table] = stored.get(table, 0) + rows
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return stored

    def load_progress(
        self, partitions: Iterable[TopicPartition], deadline: float
    ) -> dict[TopicPartition, PartitionProgress] | None:
        """What ``sink_offsets`` says of these partitions; None if ClickHouse did not answer."""
        wanted = list(partitions)
        delay = self.retry_initial_s
        while True:
            try:
                found = load_progress(self.store.client, self.store.database, self.group_id, wanted)
            except Exception as exc:
                self.health.failed(exc)
                if time.monotonic() + delay > deadline:
                    return None
                time.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            self.health.ok()
            return found

    def _record_started(self, ranges: list[tuple[str, int, int, int]], job: Job) -> None:
        if ranges:
            rows = progress_rows(self.group_id, ranges, job.token, STARTED)
            self._insert_retrying(rows, f"{job.token}:{STARTED}", job.abort)

    def _store(
        self, table: str, records: Sequence[Record], token: str, abort: threading.Event
    ) -> int:
        rows = build_rows(table, records)
        try:
            self._insert_retrying(rows, token, abort)
        except WriteAbortedError:
            raise
        except Exception as exc:
            return self._isolate(table, records, token, abort, exc)
        self.metrics.rows.labels(table).inc(rows.count)
        return rows.count

    def _store_envelopes(
        self, kind: EventKind, envelopes: Sequence[RawEnvelope], token: str, abort: threading.Event
    ) -> int:
        """One insert of the envelopes' JSON, parsed by the server; retried while ClickHouse
        is unreachable. If the server refuses them, they are decoded here and stored (or
        dead-lettered) record by record, the slow but exact way."""
        table = ENVELOPE_TABLES[kind][0]
        values = [e.value for e in envelopes]
        rows = sum(e.rows for e in envelopes)
        refused = self._retrying(
            table,
            lambda: self.store.insert_envelopes(kind, values, rows, f"{token}/json"),
            abort,
            give_up=_fall_back,
        )
        if refused is not None:
            return self._store_decoded(table, envelopes, token, abort, refused)
        self.metrics.rows.labels(table).inc(rows)
        return rows

    def _store_decoded(
        self,
        table: str,
        envelopes: Sequence[RawEnvelope],
        token: str,
        abort: threading.Event,
        exc: BaseException,
    ) -> int:
        self.metrics.envelope_fallbacks.labels(table).inc()
        log.warning(
            "ClickHouse would not parse envelopes for %s (%s); decoding them here", table, exc
        )
        by_table: dict[str, list[Record]] = {}
        for envelope in envelopes:
            for record in envelope_records(envelope, self.on_poison):
                by_table.setdefault(table_of(record), []).append(record)
        stored = 0
        for name, recs in by_table.items():
            # Per source table: envelopes of two kinds may both hold, say, open interest.
            count = self._store(name, recs, f"{token}/decoded-{table}", abort)
            stored += count if name == table else 0
        return stored

    def _insert_retrying(self, rows: TableRows, token: str, abort: threading.Event) -> None:
        """Insert until it works; data errors are raised, anything else is retried."""
        error = self._retrying(
            rows.table,
            lambda: self.store.insert(rows, token),
            abort,
            give_up=lambda exc, _failures: is_data_error(exc),
        )
        if error is not None:
            raise error

    def _retrying(
        self,
        table: str,
        insert: Callable[[], object],
        abort: threading.Event,
        give_up: Callable[[Exception, int], bool],
    ) -> Exception | None:
        """Runs ``insert`` until it works (None), with backoff, or until ``give_up(error,
        failures so far)`` says to stop retrying (that error)."""
        delay = self.retry_initial_s
        failures = 0
        while True:
            try:
                insert()
            except Exception as exc:
                if give_up(exc, failures):
                    return exc
                failures += 1
                self._failed(table, exc)
                delay = self._backoff(delay, abort)
                continue
            self.health.ok()
            return None

    def _failed(self, table: str, exc: BaseException) -> None:
        self.metrics.insert_failures.inc()
        self.health.failed(exc)
        log.warning("insert into %s failed, will retry: %s", table, self.health.last_error)

    def _backoff(self, delay: float, abort: threading.Event) -> float:
        if abort.wait(delay):
            raise WriteAbortedError("stopped while retrying")
        return min(delay * 2, self.retry_max_s)

    def _isolate(
        self,
        table: str,
        records: Sequence[Record],
        token: str,
        abort: threading.Event,
        exc: BaseException,
    ) -> int:
        if len(records) == 1:
            self._reject(table, records[0], token, abort, exc)
            return 0
        mid = len(records) // 2
        first = self._store(table, records[:mid], f"{token}/a", abort)
        return first + self._store(table, records[mid:], f"{token}/b", abort)

    def _reject(
        self, table: str, record: Record, token: str, abort: threading.Event, exc: BaseException
    ) -> None:
        self.metrics.rejected_rows.labels(table).inc()
        reason = f"ClickHouse refused the row for {table}: {type(exc).__name__}: {exc}"
        log.error("%s; storing it as a dead letter", reason)
        if table == "dead_letters":
            return  # nowhere left to put it: the error log above is its record
        letter = DeadLetter(
            source="sink",
            venue=str(getattr(record, "venue", "")),
            channel=table,
            reason=reason[:2000],
            raw=codec.encode(record).decode(),
            ts_recv=int(time.time() * 1000),
        )
        self._store("dead_letters", [letter], f"{token}/rejected", abort)

    def _drop_stored(self, liquidations: list[Record], job: Job) -> list[Record]:
        """Liquidations minus those an interrupted earlier batch stored already."""
        suspects = [
            e
            for e in liquidations
            if isinstance(e, Liquidation) and e.event_id in job.batch.suspect_ids
        ]
        if not suspects:
            return liquidations
        stored = self._stored_ids(suspects, job.abort)
        kept = [
            e for e in liquidations if not (isinstance(e, Liquidation) and e.event_id in stored)
        ]
        if len(kept) < len(liquidations):
            self.metrics.replayed_rows.labels("liquidations").inc(len(liquidations) - len(kept))
        return kept

    def _stored_ids(self, suspects: list[Liquidation], abort: threading.Event) -> set[str]:
        query = (
            f"SELECT event_id FROM {self.store.database}.liquidations "  # noqa: S608 (checked name)
            "WHERE asset IN {assets:Array(String)} "
            "AND ts_event BETWEEN fromUnixTimestamp64Milli({lo:Int64}, 'UTC') "
            "AND fromUnixTimestamp64Milli({hi:Int64}, 'UTC')"
        )
        params = {
            "assets": sorted({e.asset for e in suspects}),
            "lo": min(e.ts_event for e in suspects),
            "hi": max(e.ts_event for e in suspects),
        }
        delay = self.retry_initial_s
        while True:
            try:
                result = self.store.client.query(query, parameters=params)
            except Exception as exc:
                self._failed("liquidations", exc)
                delay = self._backoff(delay, abort)
                continue
            self.health.ok()
            wanted = {e.event_id for e in suspects}
            return {row[0] for row in result.result_rows} & wanted
