"""Decoding Kafka messages into records, and the batch that gathers them per table."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from liqwatch import codec
from liqwatch.outcome_records import outcome_from_update
from liqwatch.schema import (
    Alert,
    AlertUpdate,
    CascadeSignal,
    ClusterSnapshot,
    DeadLetter,
    Delivery,
    EnvelopeHead,
    EventKind,
    HeatmapSnapshot,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Outcome,
    SweepSignal,
)
from liqwatch.topics import Topics
from sinks.clickhouse import rows as r


class OutcomeRow(msgspec.Struct, frozen=True):
    """An outcome the alerter computed (an AlertUpdate with subkind ``outcome``)."""

    alert_id: str
    outcome: Outcome
    computed_at: int


Record = (
    Liquidation
    | OpenInterest
    | MarkPrice
    | ClusterSnapshot
    | HeatmapSnapshot
    | SweepSignal
    | CascadeSignal
    | Alert
    | AlertUpdate
    | Delivery
    | DeadLetter
    | OutcomeRow
)
TopicPartition = tuple[str, int]


class Role(enum.Enum):
    MARKET = "market"
    SIGNALS = "signals"
    ALERTS = "alerts"
    DELIVERIES = "deliveries"
    DLQ = "dlq"


def topic_roles(topics: Topics) -> dict[str, Role]:
    roles = dict.fromkeys(topics.market, Role.MARKET)
    roles[topics.signals] = Role.SIGNALS
    roles[topics.alerts] = Role.ALERTS
    roles[topics.deliveries] = Role.DELIVERIES
    roles[topics.dlq] = Role.DLQ
    return roles


class PoisonError(ValueError):
    """A message that cannot be decoded into liqwatch records."""


def decode_records(role: Role, value: bytes | None) -> Sequence[Record]:
    """The records carried by one Kafka message (an envelope holds many)."""
    if not value:
        raise PoisonError("empty message")
    try:
        if role is Role.MARKET:
            return codec.envelope_decoder.decode(value).events
        if role is Role.SIGNALS:
            return [codec.signal_decoder.decode(value)]
        if role is Role.ALERTS:
            return _alert_records(codec.alert_decoder.decode(value))
        if role is Role.DELIVERIES:
            return [codec.delivery_decoder.decode(value)]
        return [codec.dead_letter_decoder.decode(value)]
    except (codec.DecodeError, codec.ValidationError, UnicodeDecodeError) as exc:
        raise PoisonError(f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class RawEnvelope:
    """A market message kept as it came, for ClickHouse to parse, and where it came from."""

    kind: EventKind
    value: bytes
    rows: int
    topic: str
    partition: int
    offset: int
    key: bytes | None = None


def decode_head(value: bytes | None) -> EnvelopeHead:
    """The envelope's header and event count; the events are checked as JSON only."""
    if not value:
        raise PoisonError("empty message")
    try:
        return codec.envelope_head_decoder.decode(value)
    except (codec.DecodeError, codec.ValidationError, UnicodeDecodeError) as exc:
        raise PoisonError(f"{type(exc).__name__}: {exc}") from exc


def envelope_records(
    envelope: RawEnvelope, poison: Callable[[RawEnvelope, str], DeadLetter]
) -> Sequence[Record]:
    """The envelope's events, or the dead letter ``poison`` makes of it if msgspec refuses it."""
    try:
        return decode_records(Role.MARKET, envelope.value)
    except PoisonError as exc:
        return [poison(envelope, str(exc))]


def dead_letter(
    topic: str, partition: int, offset: int, value: bytes | None, reason: str
) -> DeadLetter:
    """The dead letter of an undecodable message, with where it was and why."""
    return DeadLetter(
        source="sink",
        venue="",
        channel=topic,
        reason=f"undecodable message at {topic}[{partition}]@{offset}: {reason}",
        raw=(value or b"").decode("utf-8", "replace"),
        ts_recv=int(time.time() * 1000),
    )


def _alert_records(message: Alert | AlertUpdate) -> Sequence[Record]:
    """Outcome updates are kept as updates (the audit trail) and as alert_outcomes rows."""
    if isinstance(message, AlertUpdate) and (outcome := outcome_from_update(message)):
        return [message, OutcomeRow(message.alert_id, outcome, message.ts)]
    return [message]


def _outcome_rows(records: Sequence[OutcomeRow]) -> r.TableRows:
    stamp = max(rec.computed_at for rec in records)
    return r.outcome_rows([(rec.alert_id, rec.outcome) for rec in records], stamp)


def row_count(records: Sequence[Record]) -> int:
    """Rows the records become in ClickHouse (a heatmap snapshot is one row per cell)."""
    rows = len(records)
    for rec in records:
        if type(rec) is HeatmapSnapshot:
            rows += _cells(rec) - 1
    return rows


def _cells(snap: HeatmapSnapshot) -> int:
    return (
        len(snap.realized_long)
        + len(snap.realized_short)
        + len(snap.estimated_long)
        + len(snap.estimated_short)
    )


_TABLE_OF: dict[type[Any], str] = {
    Liquidation: "liquidations",
    OpenInterest: "open_interest",
    MarkPrice: "mark_price",
    HeatmapSnapshot: "heatmap",
    ClusterSnapshot: "signals",
    SweepSignal: "signals",
    CascadeSignal: "signals",
    Alert: "alerts",
    AlertUpdate: "alert_updates",
    Delivery: "deliveries",
    DeadLetter: "dead_letters",
    OutcomeRow: "alert_outcomes",
}

_BUILDERS: dict[str, Any] = {
    "liquidations": r.liquidation_rows,
    "open_interest": r.open_interest_rows,
    "mark_price": r.mark_price_rows,
    "heatmap": r.heatmap_rows,
    "signals": r.signal_rows,
    "alerts": r.alert_rows,
    "alert_updates": r.alert_update_rows,
    "deliveries": r.delivery_rows,
    "dead_letters": r.dead_letter_rows,
    "alert_outcomes": _outcome_rows,
}

TABLES = tuple(_BUILDERS)


def table_of(record: Record) -> str:
    return _TABLE_OF[type(record)]


def build_rows(table: str, records: Sequence[Record]) -> r.TableRows:
    rows: r.TableRows = _BUILDERS[table](records)
    return rows


@dataclass
class Batch:
    """Records waiting to be stored, per table, with the Kafka offsets they complete."""

    # When its first message came (None while empty): an idle spell before it does not age it.
    created: float | None = None
    records: dict[str, list[Record]] = field(default_factory=lambda: {t: [] for t in TABLES})
    rows: int = 0
    # (topic, partition) -> the offset to commit once these rows are stored (last + 1)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    first_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    # event_ids of liquidations re-consumed after an assignment: maybe stored already
    suspect_ids: set[str] = field(default_factory=set)
    # Market messages left as JSON for the server to parse, per event kind.
    envelopes: dict[EventKind, list[RawEnvelope]] = field(default_factory=dict)

    def add(self, records: Sequence[Record], rows: int, suspect: bool = False) -> None:
        if len(set(map(type, records))) == 1:  # an envelope: one kind, one list
            self.records[_TABLE_OF[type(records[0])]].extend(records)
        else:
            for rec in records:
                self.records[_TABLE_OF[type(rec)]].append(rec)
        if suspect:
            self.suspect_ids.update(r.event_id for r in records if isinstance(r, Liquidation))
        self.rows += rows

    def add_envelope(self, envelope: RawEnvelope) -> None:
        self.envelopes.setdefault(envelope.kind, []).append(envelope)
        self.rows += envelope.rows

    def complete(self, topic: str, partition: int, offset: int) -> None:
        if self.created is None:
            self.created = time.monotonic()
        self.offsets[(topic, partition)] = offset + 1
        self.first_offsets.setdefault((topic, partition), offset)

    def ranges(self) -> list[tuple[str, int, int, int]]:
        """(topic, partition, first offset, last offset) of every partition in the batch."""
        return [(t, p, self.first_offsets[(t, p)], end - 1) for (t, p), end in self.offsets.items()]

    def age(self, now: float) -> float:
        return 0.0 if self.created is None else now - self.created

    def tables(self) -> list[r.TableRows]:
        return [build_rows(t, recs) for t, recs in self.records.items() if recs]

    def __bool__(self) -> bool:
        return bool(self.rows or self.offsets)
