"""The sink end to end, with market envelopes parsed by ClickHouse or decoded in Python: the
same rows, and an envelope the server refuses ends up stored or dead-lettered all the same."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest
from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer

from liqwatch import codec
from liqwatch.schema import Envelope, EventKind, MarketEvent
from liqwatch.settings import ClickHouseSettings
from liqwatch.stack.chserver import ClickHouseServer
from liqwatch.topics import Topics
from sinks.clickhouse.migrate import migrate
from sinks.loop import ORIGIN_HEADER, ORIGIN_SINK
from tests.sinks import factories as f
from tests.sinks.kafka_helpers import produce, running_sink, sink_settings, wait_until

PARTITIONS = 2


def _one(kind: EventKind, events: list[MarketEvent], seq: int) -> Envelope:
    return Envelope(kind=kind, asset="BTC", producer="t", seq=seq, ts_flush=0, events=events)


@pytest.fixture
def topics(kafka_topics: Callable[..., list[str]]) -> Topics:
    created = kafka_topics(Topics("").all, PARTITIONS)
    return Topics(created[0].removesuffix("liquidations"))


def _count(client: Client, db: str, table: str) -> int:
    return int(str(client.command(f"SELECT count() FROM {db}.{table}")))


def _bad_side_envelope() -> bytes:
    events = [msgspec.to_builtins(f.liquidation(900 + i)) for i in range(3)]
    events[1]["side"] = "sideways"
    envelope = {"kind": "liquidation", "asset": "BTC", "producer": "t", "seq": 9, "ts_flush": 0}
    return msgspec.json.encode({**envelope, "events": events})


def _dead_letter_copies(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "copies", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    found: list[bytes] = []

    def one_read() -> bool:
        for msg in consumer.consume(100, 0.5):
            if msg.error() is None and (ORIGIN_HEADER, ORIGIN_SINK) in (msg.headers() or []):
                found.append(msg.value() or b"")
        return bool(found)

    try:
        wait_until(one_read, 20, "the dead-letter copy")
    finally:
        consumer.close()
    return found


@pytest.mark.parametrize("parse_on_server", [True, False])
def test_envelopes_land_once_and_a_refused_one_is_dead_lettered(
    parse_on_server: bool,
    kafka_bootstrap: str,
    topics: Topics,
    clickhouse_server: ClickHouseServer,
    ch_database: str,
    clickhouse_client: Client,
) -> None:
    migrate(clickhouse_client, ch_database)
    liqs = f.random_liquidations(3_000, seed=31)
    produce(kafka_bootstrap, topics.liquidations, f.envelopes(liqs, 200))
    produce(kafka_bootstrap, topics.liquidations, [_bad_side_envelope()])
    mixed: list[MarketEvent] = [f.liquidation(950), f.open_interest(7)]
    produce(kafka_bootstrap, topics.liquidations, [_one(EventKind.LIQUIDATION, mixed, 1)])
    marks: list[MarketEvent] = [f.mark_price(i) for i in range(5)]
    produce(kafka_bootstrap, topics.mark_price, [_one(EventKind.MARK_PRICE, marks, 0)])
    ch = ClickHouseSettings(url=clickhouse_server.url, database=ch_database)
    settings = sink_settings(kafka_bootstrap, topics, ch, parse_on_server=parse_on_server)
    db = ch_database
    with running_sink(settings) as sink:
        wait_until(lambda: _count(clickhouse_client, db, "dead_letters") == 1, 60, "dead letter")
        wait_until(lambda: _count(clickhouse_client, db, "liquidations") == 3_001, 30, "rows")
        wait_until(lambda: _count(clickhouse_client, db, "mark_price") == 5, 30, "marks")
        assert sink.metric("liqwatch_sink_poison_messages_total", topic=topics.liquidations) == 1
        assert sink.metric("liqwatch_dlq_messages_total", source="sink") == 1
        fallbacks = sink.metric("liqwatch_sink_envelope_fallbacks_total", table="liquidations")
        assert fallbacks >= (1 if parse_on_server else 0)
        assert parse_on_server or fallbacks == 0

    assert _count(clickhouse_client, db, "open_interest") == 1
    assert clickhouse_client.command(f"SELECT sum(events) FROM {db}.liquidations_1m") == 3_001
    [(reason,)] = clickhouse_client.query(f"SELECT reason FROM {db}.dead_letters").result_rows
    assert f"undecodable message at {topics.liquidations}" in reason
    assert "Invalid enum value 'sideways'" in reason
    copies = _dead_letter_copies(kafka_bootstrap, topics.dlq)
    assert [codec.dead_letter_decoder.decode(c).channel for c in copies] == [topics.liquidations]
