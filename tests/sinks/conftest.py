"""Fixtures for the ClickHouse sink tests: both backends (server and embedded chDB)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from liqwatch.settings import ClickHouseSettings
from sinks.clickhouse.connect import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.store import Store


@dataclass
class Backend:
    name: str
    client: Client
    database: str
    settings: ClickHouseSettings

    @property
    def store(self) -> Store:
        return Store(self.client, self.database)


@pytest.fixture(scope="module")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="module")
def chdb_client(chdb_path: Path) -> Iterator[Client]:
    """An embedded engine for this module only: chDB hosts one data path per process, so it is
    closed before another module (or another component's tests) opens a different path."""
    client = connect(ClickHouseSettings(url=f"chdb://{chdb_path}", database="default"))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def chdb_database(chdb_client: Client) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    chdb_client.command(f"DROP DATABASE IF EXISTS {name} SYNC")


@pytest.fixture(params=["server", "embedded"])
def backend(request: pytest.FixtureRequest, chdb_path: Path) -> Backend:
    """A fresh, empty database on the ClickHouse server or on the embedded chDB engine."""
    if request.param == "server":
        server = request.getfixturevalue("clickhouse_server")
        database = request.getfixturevalue("ch_database")
        settings = ClickHouseSettings(url=server.url, database=database)
        client = request.getfixturevalue("clickhouse_client")
    else:
        database = request.getfixturevalue("chdb_database")
        settings = ClickHouseSettings(url=f"chdb://{chdb_path}", database=database)
        client = request.getfixturevalue("chdb_client")
    return Backend(request.param, client, database, settings)


@pytest.fixture
def migrated(backend: Backend) -> Backend:
    migrate(backend.client, backend.database)
    return backend
