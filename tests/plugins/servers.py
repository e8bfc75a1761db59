"""Session-scoped real servers for integration tests: a Kafka broker and a ClickHouse server.

Both bind 127.0.0.1 on free ports inside pytest's tmp dir and are stopped at session end
(and, failing that, by atexit hooks and a watchdog process). A server that cannot start FAILS
the tests that need it, with the server's log tail: never a skip, so a broken stack is seen.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from liqwatch.stack._proc import StackError
from liqwatch.stack.chserver import ClickHouseServer
from liqwatch.stack.kafka import KafkaBroker, create_topics

MakeTopics = Callable[..., list[str]]


def _start_or_fail(start: Callable[[], object], what: str) -> None:
    """Run `start`; on StackError FAIL (never skip) with the server's own explanation."""
    try:
        start()
    except StackError as exc:
        message = f"{what}: {exc}"
    else:
        return
    # Outside the except block, so the report shows the message, not a chained traceback.
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """The running KafkaBroker handle (auto topic creation on, like Kafka's default)."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    _start_or_fail(lambda: broker.start(timeout=90), "local Kafka broker could not start")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    """The session broker's address, "127.0.0.1:PORT"."""
    return kafka_broker.bootstrap


@pytest.fixture
def kafka_topics(kafka_bootstrap: str) -> MakeTopics:
    """Factory: make_topics(names, partitions=1, config=None) -> the created (prefixed) names.

    Each call prefixes the names with a fresh random tag so tests never share topics on the
    session broker; topics are created before the call returns (leaders elected).
    """

    def make_topics(
        names: Iterable[str], partitions: int = 1, config: dict[str, str] | None = None
    ) -> list[str]:
        tag = uuid.uuid4().hex[:10]
        unique = [f"t{tag}.{name}" for name in names]
        _start_or_fail(
            lambda: create_topics(kafka_bootstrap, unique, partitions, config=config),
            "could not create test topics",
        )
        return unique

    return make_topics


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    """The ClickHouseServer handle: .host .port .url .data_dir, .stop() and .start().

    A fault test may stop() it and start() it again: it comes back on the same port with the
    same data. Function fixtures below restart it if a test left it down.
    """
    server = ClickHouseServer(tmp_path_factory.mktemp("clickhouse"))
    _start_or_fail(lambda: server.start(timeout=60), "local ClickHouse server could not start")
    try:
        yield server
    finally:
        server.stop()


def _running(server: ClickHouseServer) -> ClickHouseServer:
    _start_or_fail(server.ensure_started, "local ClickHouse server could not restart")
    return server


def _admin_command(server: ClickHouseServer, sql: str) -> None:
    # A fresh client each time: a pooled connection would be stale after a server restart.
    client = clickhouse_connect.get_client(host=server.host, port=server.port)
    try:
        client.command(sql)
    finally:
        client.close()


@pytest.fixture
def ch_database(clickhouse_server: ClickHouseServer) -> Iterator[str]:
    """A uniquely named, empty database on the session server; dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    _admin_command(_running(clickhouse_server), f"CREATE DATABASE {name}")
    yield name
    # The test may have stopped the server (fault injection): bring it back to clean up.
    _admin_command(_running(clickhouse_server), f"DROP DATABASE IF EXISTS {name} SYNC")


@pytest.fixture
def clickhouse_client(clickhouse_server: ClickHouseServer, ch_database: str) -> Iterator[Client]:
    """A clickhouse-connect client whose default database is `ch_database`."""
    server = _running(clickhouse_server)
    client = clickhouse_connect.get_client(host=server.host, port=server.port, database=ch_database)
    try:
        yield client
    finally:
        client.close()
