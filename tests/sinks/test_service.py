"""The Kafka sink end to end: real broker, real ClickHouse server, run_sink in a thread."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from confluent_kafka import Consumer

from liqwatch import codec
from liqwatch.settings import ClickHouseSettings
from liqwatch.stack._proc import free_port
from liqwatch.stack.chserver import ClickHouseServer
from liqwatch.topics import Topics
from sinks.batch import Batch
from sinks.loop import ORIGIN_HEADER
from sinks.settings import SinkSettings
from tests.sinks import factories as f
from tests.sinks.kafka_helpers import (
    all_committed,
    produce,
    running_sink,
    sink_settings,
    wait_until,
)

PARTITIONS = 2


@pytest.fixture
def topics(kafka_topics: Callable[..., list[str]]) -> Topics:
    created = kafka_topics(Topics("").all, PARTITIONS)
    return Topics(created[0].removesuffix("liquidations"))


@pytest.fixture
def ch(clickhouse_server: ClickHouseServer, ch_database: str) -> ClickHouseSettings:
    return ClickHouseSettings(url=clickhouse_server.url, database=ch_database)


def count(client: Client, database: str, table: str, final: bool = True) -> int:
    """Rows in the table, -1 while the sink has not created it yet."""
    try:
        sql = f"SELECT count() FROM {database}.{table}{' FINAL' if final else ''}"
        return int(str(client.command(sql)))
    except DatabaseError as exc:
        if "UNKNOWN_TABLE" in str(exc):
            return -1
        raise


def test_every_topic_lands_in_its_table_and_offsets_are_committed(
    kafka_bootstrap: str, topics: Topics, ch: ClickHouseSettings, clickhouse_client: Client
) -> None:
    liqs = f.random_liquidations(5_000, seed=21)
    produce(kafka_bootstrap, topics.liquidations, f.envelopes(liqs, 250))
    produce(
        kafka_bootstrap,
        topics.open_interest,
        [_envelope("open_interest", [f.open_interest(i) for i in range(3)])],
    )
    produce(
        kafka_bootstrap,
        topics.mark_price,
        [_envelope("mark_price", [f.mark_price(i) for i in range(4)])],
    )
    produce(
        kafka_bootstrap, topics.signals, [f.heatmap(), f.cluster(), f.sweep(), *f.cascade_phases()]
    )
    alert = f.alert()
    produce(
        kafka_bootstrap,
        topics.alerts,
        [alert, f.alert_update(alert.alert_id, 1), f.alert_update(alert.alert_id, 2)],
    )
    produce(kafka_bootstrap, topics.deliveries, [f.delivery(alert.alert_id)])
    produce(kafka_bootstrap, topics.dlq, [f.dead_letter(1)])
    produce(kafka_bootstrap, topics.liquidations, [b'{"kind": "liquidation", "events": [{"oops"'])
    db = ch.database

    settings = sink_settings(
        kafka_bootstrap,
        topics,
        ch,
        batch_max_rows=1_000,
        buffer_max_rows=3_000,
        metrics_port=free_port(),
    )
    with running_sink(settings) as sink:
        wait_until(
            lambda: count(clickhouse_client, db, "liquidations") == 5_000, 60, "liquidations"
        )
        wait_until(lambda: count(clickhouse_client, db, "dead_letters") == 2, 30, "dead letters")
        wait_until(
            lambda: _all_committed(kafka_bootstrap, settings, topics), 30, "offsets committed"
        )
        _check_health(sink.settings)
        assert sink.metric("liqwatch_sink_rows_total", table="liquidations") == 5_000
        assert sink.metric("liqwatch_sink_poison_messages_total", topic=topics.liquidations) == 1
        assert sink.metric("liqwatch_dlq_messages_total", source="sink") == 1
        assert 0 < sink.metric("liqwatch_sink_buffer_rows_high_water") <= 3_000

    expected = {
        "open_interest": 3,
        "mark_price": 4,
        "heatmap": 8,
        "signals": 5,
        "alerts": 1,
        "alert_updates": 2,
        "deliveries": 1,
    }
    assert {t: count(clickhouse_client, db, t) for t in expected} == expected
    assert count(clickhouse_client, db, "liquidations", final=False) == 5_000  # exactly once
    aggregated = clickhouse_client.command(f"SELECT sum(events) FROM {db}.liquidations_1m")
    assert aggregated == 5_000
    # one bookkeeping insert per batch: the ranges it is about to store, never a 'stored' mark
    stages = clickhouse_client.query(
        f"SELECT stage, count(), uniqExact(batch_id) FROM {db}.sink_offsets "
        "WHERE topic = {topic:String} GROUP BY stage",
        parameters={"topic": topics.liquidations},
    ).result_rows
    assert len(stages) == 1 and stages[0][0] == "started", stages
    assert stages[0][2] >= 5  # 5,000 liquidations in batches of at most 1,000 rows
    reasons = clickhouse_client.query(
        f"SELECT source, channel, reason FROM {db}.dead_letters ORDER BY source"
    ).result_rows
    assert reasons[0][0] == "producer/parse"
    assert reasons[1][:2] == ("sink", topics.liquidations)
    assert "undecodable message" in reasons[1][2] and "truncated" in reasons[1][2]
    # The poison message also went to the dead-letter topic, marked as the sink's own copy.
    copies = _read_all(kafka_bootstrap, topics.dlq)
    sink_copies = [m for m in copies if (ORIGIN_HEADER, b"sink") in (m.headers() or [])]
    assert len(sink_copies) == 1
    assert codec.dead_letter_decoder.decode(sink_copies[0].value()).channel == topics.liquidations


def test_a_row_clickhouse_refuses_becomes_a_dead_letter(
    kafka_bootstrap: str, topics: Topics, ch: ClickHouseSettings, clickhouse_client: Client
) -> None:
    """seq is UInt32 in ClickHouse: -1 decodes fine but cannot be stored. The other updates
    of the same batch must be stored and the bad one kept as a dead letter, not block."""
    good = [f.alert_update("a1", seq) for seq in (1, 2, 3)]
    bad = f.alert_update("a1", -1)
    produce(kafka_bootstrap, topics.alerts, [good[0], bad, good[1], good[2]])
    settings = sink_settings(kafka_bootstrap, topics, ch)
    with running_sink(settings) as sink:
        wait_until(
            lambda: count(clickhouse_client, ch.database, "alert_updates") == 3, 60, "updates"
        )
        wait_until(lambda: count(clickhouse_client, ch.database, "dead_letters") == 1, 30, "letter")
        assert sink.metric("liqwatch_sink_rejected_rows_total", table="alert_updates") == 1
    letter = clickhouse_client.query(
        f"SELECT source, channel, reason, raw FROM {ch.database}.dead_letters"
    ).result_rows[0]
    assert letter[:2] == ("sink", "alert_updates")
    assert "refused" in letter[2]
    assert codec.alert_decoder.decode(letter[3]) == bad


def test_batches_are_cut_at_their_size_however_much_a_fetch_brings(
    kafka_bootstrap: str, topics: Topics, ch: ClickHouseSettings, clickhouse_client: Client
) -> None:
    """All ten envelopes are on the broker before the sink starts, so its first fetch brings
    them together: it must still store them as five batches of 500 rows, not one of 2,500
    (a huge batch leaves the other writers idle and the consumer waiting)."""
    liqs = f.random_liquidations(2_500, seed=8)
    produce(kafka_bootstrap, topics.liquidations, f.envelopes(liqs, 250))
    settings = sink_settings(
        kafka_bootstrap,
        topics,
        ch,
        batch_max_rows=500,
        buffer_max_rows=5_000,
        batch_max_ms=600_000,  # only the size may cut a batch here
    )
    with running_sink(settings) as sink:
        wait_until(
            lambda: count(clickhouse_client, ch.database, "liquidations") == 2_500, 60, "rows"
        )
        wait_until(
            lambda: all_committed(kafka_bootstrap, settings.group_id, topics.liquidations, 2),
            30,
            "offsets committed",
        )
        assert sink.metric("liqwatch_sink_batch_seconds_count") == 5


def test_a_batch_ages_from_its_first_message_not_from_the_last_insert() -> None:
    batch = Batch()
    assert batch.age(time.monotonic() + 3600) == 0.0  # an idle hour makes no batch due
    batch.complete("t.liquidations", 0, 7)
    assert 0.0 <= batch.age(time.monotonic()) < 1.0
    assert batch.age(time.monotonic() + 5) >= 5.0


def test_a_restarted_sink_skips_what_it_stored_and_rechecks_an_interrupted_batch(
    kafka_bootstrap: str, topics: Topics, ch: ClickHouseSettings, clickhouse_client: Client
) -> None:
    """The state a crash leaves behind: offsets 0-3 stored (but the Kafka commit lost), a batch
    of offsets 4-7 started and its liquidations inserted, then the process died."""
    liqs = f.random_liquidations(2_000, seed=5)
    envelopes = list(f.envelopes(liqs, 100))  # 20 messages, all on partition 0 (one key)
    produce(kafka_bootstrap, topics.liquidations, envelopes)
    settings = sink_settings(kafka_bootstrap, topics, ch)
    _migrate(clickhouse_client, ch.database)
    from sinks.clickhouse.store import Store

    store = Store(clickhouse_client, ch.database)
    store.write_events(liqs[:800], dedupe_token="earlier-run")  # messages 0..7
    _record(
        clickhouse_client,
        ch.database,
        settings.group_id,
        topics.liquidations,
        first=0,
        last=3,
        stage="stored",
    )
    _record(
        clickhouse_client,
        ch.database,
        settings.group_id,
        topics.liquidations,
        first=4,
        last=7,
        stage="started",
    )

    with running_sink(settings) as sink:
        wait_until(
            lambda: _all_committed(kafka_bootstrap, settings, topics), 60, "offsets committed"
        )
        assert sink.metric("liqwatch_sink_replayed_messages_total") == 4
        assert sink.metric("liqwatch_sink_replayed_rows_total", table="liquidations") == 400
        # 400 rows skipped with their messages, 400 found stored: 1,200 left to insert.
        assert sink.metric("liqwatch_sink_rows_total", table="liquidations") == 1_200
    assert count(clickhouse_client, ch.database, "liquidations") == 2_000
    assert count(clickhouse_client, ch.database, "liquidations", final=False) == 2_000
    total = clickhouse_client.query(
        f"SELECT sum(events), round(sum(notional_usd), 2) FROM {ch.database}.liquidations_1m"
    ).result_rows[0]
    assert total == (2_000, round(sum(x.notional_usd for x in liqs), 2))


def _migrate(client: Client, database: str) -> None:
    from sinks.clickhouse.migrate import migrate

    migrate(client, database)


def _record(
    client: Client, db: str, group: str, topic: str, *, first: int, last: int, stage: str
) -> None:
    client.insert(
        "sink_offsets",
        [[group, topic, 0, first, last, "earlier-run", stage]],
        database=db,
        column_names=[
            "group_id",
            "topic",
            "partition",
            "first_offset",
            "last_offset",
            "batch_id",
            "stage",
        ],
    )


def _envelope(kind: str, events: list[Any]) -> Any:
    from liqwatch.schema import Envelope, EventKind

    return Envelope(
        kind=EventKind(kind), asset="BTC", producer="t", seq=0, ts_flush=f.T0, events=events
    )


def _all_committed(bootstrap: str, settings: SinkSettings, topics: Topics) -> bool:
    return all(all_committed(bootstrap, settings.group_id, t, PARTITIONS) for t in topics.all)


def _check_health(settings: SinkSettings) -> None:
    base = f"http://127.0.0.1:{settings.metrics_port}"
    with urllib.request.urlopen(f"{base}/readyz", timeout=5) as resp:
        assert resp.status == 200
        assert resp.read().decode().startswith(f"ok: {len(Topics('').all) * PARTITIONS} partitions")
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    assert 'liqwatch_sink_rows_total{table="liquidations"} 5000.0' in body
    assert "liqwatch_sink_consumer_lag{" in body


def _read_all(bootstrap: str, topic: str) -> list[Any]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "reader", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    messages: list[Any] = []

    def two_read() -> bool:
        messages.extend(consumer.consume(100, 0.5))
        return len(messages) >= 2

    try:
        wait_until(two_read, 20, "dlq copies")
    finally:
        consumer.close()
    return [m for m in messages if m.error() is None]
