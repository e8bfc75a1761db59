from __future__ import annotations

import pytest

from liqwatch.settings import ClickHouseSettings
from liqwatch.stack.chserver import ClickHouseServer
from sinks.clickhouse.connect import connect
from sinks.clickhouse.migrate import (
    MigrationError,
    SchemaTooNewError,
    applied_versions,
    latest_version,
    load_migrations,
    migrate,
    schema_version,
    split_statements,
)
from sinks.settings import RetentionSettings
from tests.sinks.conftest import Backend

TABLES = {
    "liquidations",
    "open_interest",
    "mark_price",
    "heatmap",
    "signals",
    "alerts",
    "alert_updates",
    "alert_outcomes",
    "deliveries",
    "dead_letters",
    "liquidations_1m",
    "schema_migrations",
}


def _tables(backend: Backend) -> dict[str, str]:
    rows = backend.client.query(
        "SELECT name, engine FROM system.tables WHERE database = {db:String}",
        parameters={"db": backend.database},
    ).result_rows
    return {str(name): str(engine) for name, engine in rows}


def test_migrate_creates_every_table_then_is_idempotent(backend: Backend) -> None:
    first = migrate(backend.client, backend.database)
    assert first == [m.version for m in load_migrations()]
    tables = _tables(backend)
    assert set(tables) >= TABLES
    assert tables["liquidations"] == "ReplacingMergeTree"
    assert tables["liquidations_1m"] == "AggregatingMergeTree"
    assert tables["liquidations_1m_mv"] == "MaterializedView"
    assert tables["cascades"] == "View"

    assert migrate(backend.client, backend.database) == []
    assert schema_version(backend.client, backend.database) == latest_version()
    # A second run must not record versions twice.
    count = backend.client.command(f"SELECT count() FROM {backend.database}.schema_migrations")
    assert count == len(load_migrations())


def test_every_column_and_table_has_a_comment(migrated: Backend) -> None:
    missing = migrated.client.query(
        "SELECT table, name FROM system.columns WHERE database = {db:String} AND comment = '' "
        # A materialized view with TO has no columns of its own: they are its target's.
        "AND table NOT IN (SELECT name FROM system.tables WHERE database = {db:String} "
        "AND engine = 'MaterializedView')",
        parameters={"db": migrated.database},
    ).result_rows
    assert missing == []
    uncommented = migrated.client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND comment = '' "
        "AND engine NOT IN ('MaterializedView')",
        parameters={"db": migrated.database},
    ).result_rows
    assert uncommented == []


def test_tables_are_partitioned_by_month_and_use_codecs(migrated: Backend) -> None:
    rows = migrated.client.query(
        "SELECT name, partition_key, sorting_key FROM system.tables "
        "WHERE database = {db:String} AND engine LIKE '%MergeTree'",
        parameters={"db": migrated.database},
    ).result_rows
    keys = {name: (partition, sorting) for name, partition, sorting in rows}
    for name in ("liquidations", "open_interest", "mark_price", "heatmap", "signals", "alerts"):
        assert keys[name][0].startswith("toYYYYMM("), name
        assert keys[name][1].startswith("asset"), name
    rows = migrated.client.query(
        "SELECT name, compression_codec FROM system.columns "
        "WHERE database = {db:String} AND table = 'liquidations'",
        parameters={"db": migrated.database},
    ).result_rows
    codecs = {str(name): str(codec) for name, codec in rows}
    assert "DoubleDelta" in codecs["ts_event"]
    assert "Gorilla" in codecs["price"]


def test_a_client_without_a_database_gets_the_migrated_one(
    clickhouse_server: ClickHouseServer, ch_database: str
) -> None:
    """`liqwatch sql` on a fresh install: connect (no database yet), migrate, query."""
    client = connect(ClickHouseSettings(url=clickhouse_server.url, database=ch_database + "_new"))
    try:
        assert client.database is None
        migrate(client, ch_database + "_new")
        assert client.command("SELECT count() FROM schema_migrations") == len(load_migrations())
    finally:
        client.command(f"DROP DATABASE IF EXISTS {ch_database}_new SYNC")
        client.close()


def test_refuses_a_newer_schema(backend: Backend) -> None:
    migrate(backend.client, backend.database)
    future = latest_version() + 1
    backend.client.insert(
        "schema_migrations",
        [[future, "from_the_future", "x"]],
        database=backend.database,
        column_names=["version", "name", "checksum"],
    )
    with pytest.raises(SchemaTooNewError, match=rf"schema version {future}.*upgrade liqwatch"):
        migrate(backend.client, backend.database)
    assert future in applied_versions(backend.client, backend.database)


def test_retention_sets_and_changes_ttls(backend: Backend) -> None:
    migrate(backend.client, backend.database, RetentionSettings(raw_ttl_days=90))

    def engine(table: str) -> str:
        return str(
            backend.client.command(
                "SELECT engine_full FROM system.tables WHERE database = {db:String} "
                "AND name = {t:String}",
                parameters={"db": backend.database, "t": table},
            )
        )

    assert "toIntervalDay(90)" in engine("liquidations")
    assert "TTL" not in engine("heatmap")
    migrate(
        backend.client, backend.database, RetentionSettings(raw_ttl_days=30, heatmap_ttl_days=7)
    )
    assert "toIntervalDay(30)" in engine("mark_price")
    assert "toIntervalDay(7)" in engine("heatmap")
    migrate(backend.client, backend.database, RetentionSettings())
    assert "TTL" not in engine("liquidations")


def test_bad_database_name_is_a_clear_error(backend: Backend) -> None:
    with pytest.raises(MigrationError, match="invalid database name"):
        migrate(backend.client, "x; DROP TABLE y")


def test_split_statements_respects_quotes_and_comments() -> None:
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE a (x String COMMENT 'it''s; fine') ENGINE = Memory;
    SELECT 'a;b', `c;d` ; -- trailing
    """
    assert split_statements(sql) == [
        "CREATE TABLE a (x String COMMENT 'it''s; fine') ENGINE = Memory",
        "SELECT 'a;b', `c;d`",
    ]
    with pytest.raises(MigrationError, match="unterminated"):
        split_statements("SELECT 'oops")
