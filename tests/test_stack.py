"""The no-docker local stack: a real Kafka broker and a real ClickHouse server, end to end."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import clickhouse_connect
import pytest
from click.testing import CliRunner
from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from liqwatch.stack._proc import StackError, free_port, port_open
from liqwatch.stack.chserver import ClickHouseServer, ping
from liqwatch.stack.cli import DEFAULT_TOPICS, RunState, stack
from liqwatch.stack.kafka import KafkaBroker, create_topics, new_cluster_id
from tests.plugins.servers import MakeTopics

pytestmark = pytest.mark.servers


def _consume(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    values: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(values) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            value = msg.value()
            assert isinstance(value, bytes)
            values.append(value)
    finally:
        consumer.close()
    return values


def test_kafka_produce_and_consume(kafka_bootstrap: str, kafka_topics: MakeTopics) -> None:
    (topic,) = kafka_topics(["liquidations"], partitions=3)
    meta = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(topic, timeout=10)
    assert len(meta.topics[topic].partitions) == 3

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    sent = [f'{{"asset":"BTC","n":{i}}}'.encode() for i in range(20)]
    for i, value in enumerate(sent):
        producer.produce(topic, value, key=f"asset-{i % 4}".encode())
    assert producer.flush(15) == 0

    received = _consume(kafka_bootstrap, topic, len(sent))
    assert sorted(received) == sorted(sent)


def test_kafka_topics_are_unique_and_creation_is_idempotent(
    kafka_bootstrap: str, kafka_topics: MakeTopics
) -> None:
    first = kafka_topics(["a", "b"], partitions=2)
    second = kafka_topics(["a", "b"], partitions=2)
    assert not set(first) & set(second)
    # Creating existing topics again is not an error (the CLI's `up` relies on it).
    assert create_topics(kafka_bootstrap, first, 2) == first


def test_kafka_refuses_a_busy_port_clearly(tmp_path: Path, kafka_bootstrap: str) -> None:
    port = int(kafka_bootstrap.rsplit(":", 1)[1])
    with pytest.raises(StackError, match="already in use"):
        KafkaBroker(tmp_path / "k", port=port).start(timeout=10)


def test_cluster_ids_are_valid_kafka_uuids() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_clickhouse_insert_and_select(clickhouse_client: Client) -> None:
    clickhouse_client.command(
        "CREATE TABLE liq (ts DateTime64(3), asset LowCardinality(String), qty Float64)"
        " ENGINE = MergeTree ORDER BY (asset, ts)"
    )
    rows = [[1_700_000_000 + i, "BTC" if i % 2 else "ETH", float(i)] for i in range(100)]
    clickhouse_client.insert("liq", rows, column_names=["ts", "asset", "qty"])
    # Synchronous inserts: visible as soon as insert() returns (chDB defaults to async).
    result = clickhouse_client.query("SELECT asset, count(), sum(qty) FROM liq GROUP BY asset")
    assert sorted(map(tuple, result.result_rows)) == [("BTC", 50, 2500.0), ("ETH", 50, 2450.0)]
    setting = "SELECT value FROM system.settings WHERE name = 'async_insert'"
    assert str(clickhouse_client.command(setting)) == "0"


def test_clickhouse_stop_and_restart_keeps_data(
    clickhouse_server: ClickHouseServer, ch_database: str
) -> None:
    server = clickhouse_server
    client = clickhouse_connect.get_client(host=server.host, port=server.port, database=ch_database)
    try:
        client.command("CREATE TABLE kept (id UInt64) ENGINE = MergeTree ORDER BY id")
        client.insert("kept", [[i] for i in range(1000)], column_names=["id"])
    finally:
        client.close()

    server.stop()
    assert not ping(server.url)
    assert not port_open(server.port)
    server.start()

    client = clickhouse_connect.get_client(host=server.host, port=server.port, database=ch_database)
    try:
        assert client.command("SELECT count() FROM kept") == 1000
    finally:
        client.close()


def test_clickhouse_second_server_on_same_data_dir_fails_clearly(
    clickhouse_server: ClickHouseServer,
) -> None:
    clickhouse_server.ensure_started()
    intruder = ClickHouseServer(clickhouse_server.data_dir)
    with pytest.raises(StackError, match="exited") as info:
        intruder.start(timeout=30)
    assert "Another server instance" in str(info.value)
    assert not intruder.running()


def test_cli_up_status_down(tmp_path: Path) -> None:
    runner = CliRunner()
    run_dir = tmp_path / "stack"
    kafka_port, ch_port = free_port(), free_port()
    args = ["--dir", str(run_dir)]
    try:
        up = runner.invoke(
            stack,
            ["up", *args, "--kafka-port", str(kafka_port), "--clickhouse-port", str(ch_port)],
        )
        assert up.exit_code == 0, up.output
        assert f"127.0.0.1:{kafka_port}" in up.output
        assert f"http://127.0.0.1:{ch_port}" in up.output

        status = runner.invoke(stack, ["status", *args])
        assert status.exit_code == 0, status.output
        assert status.output.count(" reachable") == 2

        again = runner.invoke(stack, ["up", *args, "--kafka-port", str(kafka_port)])
        assert again.exit_code == 0, again.output
        assert "already running" in again.output

        meta = AdminClient({"bootstrap.servers": f"127.0.0.1:{kafka_port}"}).list_topics(timeout=10)
        for topic in DEFAULT_TOPICS:
            assert len(meta.topics[topic].partitions) == 4
    finally:
        down = runner.invoke(stack, ["down", *args])
    assert down.exit_code == 0, down.output
    assert "kafka: stopped" in down.output
    assert "clickhouse: stopped" in down.output
    assert RunState.load(run_dir).services == {}
    assert not port_open(kafka_port)
    assert not port_open(ch_port)

    status = runner.invoke(stack, ["status", *args])
    assert status.exit_code == 1
    assert "not started" in status.output
