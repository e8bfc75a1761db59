"""Market envelopes parsed by the ClickHouse server: same rows as the Python path, as strict,
and what it refuses is decoded in Python and stored or dead-lettered, never lost."""

from __future__ import annotations

import json
import threading
from typing import Any

import msgspec
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from prometheus_client import CollectorRegistry

from liqwatch import codec
from liqwatch.schema import DeadLetter, Envelope, EventKind, MarketEvent
from sinks.batch import Batch, PoisonError, RawEnvelope, Role, decode_head, decode_records
from sinks.clickhouse.envelopes import UnsupportedFieldError, envelope_insert_sql
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.store import Store
from sinks.metrics import SinkMetrics
from sinks.writer import BatchWriter, ClickHouseHealth, Job, _fall_back, refused_data
from tests.sinks import factories as f

KINDS = {
    EventKind.LIQUIDATION: "liquidations",
    EventKind.OPEN_INTEREST: "open_interest",
    EventKind.MARK_PRICE: "mark_price",
}


def _envelope(kind: EventKind, events: list[Any], seq: int = 0) -> bytes:
    envelope = Envelope(kind=kind, asset="BTC", producer="t", seq=seq, ts_flush=0, events=events)
    return codec.encode(envelope)


def _raw(kind: EventKind, value: bytes, offset: int = 0) -> RawEnvelope:
    head = decode_head(value)
    return RawEnvelope(head.kind, value, len(head.events), "t.liquidations", 0, offset, b"k")


def _events() -> dict[EventKind, list[Any]]:
    return {
        EventKind.LIQUIDATION: f.random_liquidations(300, seed=3),
        EventKind.OPEN_INTEREST: [f.open_interest(i, ts=f.T0 + i) for i in range(5)],
        EventKind.MARK_PRICE: [f.mark_price(i, ts=f.T0 + i) for i in range(6)],
    }


def _table(client: Client, db: str, table: str) -> list[tuple[Any, ...]]:
    return [
        tuple(r) for r in client.query(f"SELECT * FROM {db}.{table} ORDER BY event_id").result_rows
    ]


@pytest.fixture
def store(clickhouse_client: Client, ch_database: str) -> Store:
    migrate(clickhouse_client, ch_database)
    return Store(clickhouse_client, ch_database)


def test_server_parsed_envelopes_store_the_same_rows_as_decoded_ones(
    store: Store, clickhouse_client: Client, ch_database: str
) -> None:
    other = f"{ch_database}_py"
    migrate(clickhouse_client, other)
    try:
        for kind, events in _events().items():
            halves = [events[: len(events) // 2], events[len(events) // 2 :]]
            body = [_envelope(kind, half, seq) for seq, half in enumerate(halves)]
            assert store.insert_envelopes(kind, body, len(events)) == len(events)
            Store(clickhouse_client, other).write_events(events)
        for table in KINDS.values():
            parsed = _table(clickhouse_client, ch_database, table)
            assert parsed == _table(clickhouse_client, other, table)
            assert len(parsed) > 0
        # Optional fields both null and set went through (mark prices alternate them).
        marks = _table(clickhouse_client, ch_database, "mark_price")
        assert {row[7] is None for row in marks} == {True, False}
        aggregated = clickhouse_client.command(
            f"SELECT sum(events) FROM {ch_database}.liquidations_1m"
        )
        assert aggregated == 300
    finally:
        clickhouse_client.command(f"DROP DATABASE IF EXISTS {other} SYNC")


def test_a_retried_envelope_insert_with_its_token_lands_once(
    store: Store, clickhouse_client: Client, ch_database: str
) -> None:
    liqs = f.random_liquidations(200, seed=4)
    body = [codec.encode(e) for e in f.envelopes(liqs, 50)]
    for _ in range(2):
        store.insert_envelopes(EventKind.LIQUIDATION, body, 200, "batch-1")
    assert clickhouse_client.command(f"SELECT count() FROM {ch_database}.liquidations") == 200
    assert (
        clickhouse_client.command(f"SELECT sum(events) FROM {ch_database}.liquidations_1m") == 200
    )


def _mutated(change: dict[str, Any] | None = None, drop: str | None = None) -> bytes:
    event = msgspec.to_builtins(f.liquidation(1))
    event.update(change or {})
    if drop is not None:
        del event[drop]
    good = msgspec.to_builtins(f.liquidation(2))
    return json.dumps(
        {
            "kind": "liquidation",
            "asset": "BTC",
            "producer": "t",
            "seq": 0,
            "ts_flush": 0,
            "events": [good, event],
        }
    ).encode()


BAD_EVENTS = {
    "unknown side": _mutated({"side": "sideways"}),
    "enum as number": _mutated({"side": 1}),
    "unknown venue": _mutated({"venue": "mtgox"}),
    "another event type": _mutated({"type": "open_interest"}),
    "null where required": _mutated({"price": None}),
    "null string": _mutated({"event_id": None}),
    "number for a string": _mutated({"symbol": 5}),
    "missing field": _mutated(drop="qty"),
    "float for an int": _mutated({"ts_event": 1.5}),
    "bool for a float": _mutated({"price": True}),
}


@pytest.mark.parametrize("name", list(BAD_EVENTS))
def test_the_server_refuses_what_msgspec_refuses(
    name: str, store: Store, clickhouse_client: Client, ch_database: str
) -> None:
    value = BAD_EVENTS[name]
    with pytest.raises(msgspec.ValidationError):
        codec.envelope_decoder.decode(value)
    with pytest.raises(DatabaseError):
        store.insert_envelopes(EventKind.LIQUIDATION, [value], 2)
    assert clickhouse_client.command(f"SELECT count() FROM {ch_database}.liquidations") == 0


def test_the_server_refuses_ints_the_python_path_cannot_insert_either(
    store: Store, clickhouse_client: Client, ch_database: str
) -> None:
    value = _mutated({"ts_event": 2**64})
    with pytest.raises(DatabaseError):
        store.insert_envelopes(EventKind.LIQUIDATION, [value], 2)
    events = codec.envelope_decoder.decode(value).events
    with pytest.raises((OverflowError, DatabaseError)):
        store.write_events(events)
    assert clickhouse_client.command(f"SELECT count() FROM {ch_database}.liquidations") == 0


def test_unknown_fields_are_ignored_on_both_paths(
    store: Store, clickhouse_client: Client, ch_database: str
) -> None:
    value = _mutated({"extra": {"nested": [1, 2]}})
    assert len(codec.envelope_decoder.decode(value).events) == 2
    store.insert_envelopes(EventKind.LIQUIDATION, [value], 2)
    assert clickhouse_client.command(f"SELECT count() FROM {ch_database}.liquidations") == 2


def test_the_header_is_checked_and_the_events_counted_in_python() -> None:
    value = _envelope(EventKind.MARK_PRICE, [f.mark_price(i) for i in range(3)])
    head = decode_head(value)
    assert (head.kind, len(head.events)) == (EventKind.MARK_PRICE, 3)
    with pytest.raises(PoisonError, match="truncated"):
        decode_head(b'{"kind": "liquidation", "events": [{"oops"')
    with pytest.raises(PoisonError, match="kind"):
        decode_head(value.replace(b'"mark_price"', b'"futures"', 1))
    with pytest.raises(PoisonError, match="empty"):
        decode_head(b"")


def test_a_statement_is_not_built_for_a_field_the_server_cannot_check() -> None:
    class Odd(msgspec.Struct, tag="odd"):
        tags: list[str]

    with pytest.raises(UnsupportedFieldError, match="tags"):
        envelope_insert_sql("db", "t", Odd, {"tags": "Array(String)"})


def test_envelopes_the_server_refuses_are_decoded_stored_and_dead_lettered(
    store: Store, clickhouse_client: Client, ch_database: str
) -> None:
    """One batch: good envelopes, one whose event msgspec also refuses (a poison message), and
    one holding an open-interest event in a liquidation envelope (valid, stored in its table)."""
    liqs = f.random_liquidations(100, seed=9)
    good = [_envelope(EventKind.LIQUIDATION, liqs[i : i + 50], i) for i in (0, 50)]
    mixed_events: list[MarketEvent] = [f.liquidation(500), f.open_interest(1)]
    mixed = _envelope(EventKind.LIQUIDATION, mixed_events)
    poison = BAD_EVENTS["unknown side"]
    batch = Batch()
    for offset, value in enumerate([good[0], poison, mixed, good[1]]):
        batch.add_envelope(_raw(EventKind.LIQUIDATION, value, offset))
        batch.complete("t.liquidations", 0, offset)
    registry = CollectorRegistry()
    metrics = SinkMetrics(registry)
    writer = BatchWriter(store, metrics, ClickHouseHealth(), "g", retry_initial_s=0.05)
    poisoned: list[tuple[int, str]] = []

    def on_poison(envelope: RawEnvelope, reason: str) -> DeadLetter:
        poisoned.append((envelope.offset, reason))
        return DeadLetter(
            source="sink",
            venue="",
            channel="t.liquidations",
            reason=reason,
            raw=envelope.value.decode(),
            ts_recv=f.T0,
        )

    writer.on_poison = on_poison
    stored = writer.write(Job(batch, "tok", abort=threading.Event()))

    assert stored["liquidations"] == 101
    assert [offset for offset, _ in poisoned] == [1]
    assert "Invalid enum value 'sideways'" in poisoned[0][1]
    db = ch_database
    assert clickhouse_client.command(f"SELECT count() FROM {db}.liquidations") == 101
    assert clickhouse_client.command(f"SELECT count() FROM {db}.open_interest") == 1
    letters = clickhouse_client.query(f"SELECT reason, raw FROM {db}.dead_letters").result_rows
    assert letters == [(poisoned[0][1], poison.decode())]
    assert (
        registry.get_sample_value(
            "liqwatch_sink_envelope_fallbacks_total", {"table": "liquidations"}
        )
        == 1
    )
    assert registry.get_sample_value("liqwatch_sink_rows_total", {"table": "liquidations"}) == 101


def _raw_mutated(placeholder: dict[str, Any], old: bytes, new: bytes) -> bytes:
    """An envelope whose bytes JSON cannot express through json.dumps (bad UTF-8, 1e999)."""
    value = _mutated(placeholder)
    assert old in value
    return value.replace(old, new, 1)


RAW_BAD_EVENTS = {
    "invalid UTF-8 in a string": _raw_mutated({"symbol": "SYMBOLX"}, b'"SYMBOLX"', b'"BTC\xffX"'),
    "a float out of range": _raw_mutated({"qty": 12345.678}, b"12345.678", b"1e999"),
    "nan as a string": _mutated({"notional_usd": "nan"}),
}


@pytest.mark.parametrize("name", list(RAW_BAD_EVENTS))
def test_what_msgspec_refuses_as_bytes_is_poison_on_both_paths(
    name: str, store: Store, clickhouse_client: Client, ch_database: str
) -> None:
    value = RAW_BAD_EVENTS[name]
    with pytest.raises(PoisonError):
        decode_records(Role.MARKET, value)
    with pytest.raises(DatabaseError) as refused:
        store.insert_envelopes(EventKind.LIQUIDATION, [value], 2)
    assert refused_data(refused.value), refused.value
    assert clickhouse_client.command(f"SELECT count() FROM {ch_database}.liquidations") == 0


def _error(code: int | None) -> DatabaseError:
    exc = DatabaseError(f"code {code}")
    if code is not None:
        exc.code = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("code", "doubtful", "decode_here"),
    [
        (117, 0, True),  # refused content: decode here
        (395, 3, True),  # a failed check (throwIf), even after doubtful attempts
        (252, 0, False),  # too many parts: retry the same insert, same token
        (241, 7, False),  # memory limit: always retried
        (None, 0, False),  # no server code (a proxy?): may have landed, retry
        (None, 5, True),  # ... but not forever
        (48, 0, True),  # unknown: nothing may have landed yet, decode here
        (48, 1, False),  # unknown after an unanswered attempt: retry under the same token
        (48, 5, True),  # ... a few times only
    ],
)
def test_envelopes_fall_back_to_python_only_when_that_cannot_store_twice(
    code: int | None, doubtful: int, decode_here: bool
) -> None:
    assert _fall_back(_error(code), doubtful) is decode_here


def test_an_unreachable_server_is_retried_however_often_it_fails() -> None:
    down = OperationalError("connection refused")
    assert not _fall_back(down, 0)
    assert not _fall_back(down, 50)
