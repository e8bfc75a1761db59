from __future__ import annotations

import csv
import io
import json
from urllib.parse import urlsplit

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from sinks.sql_cli import SqlError, format_result, is_read, run_sql, statement_keyword
from tests.sinks import factories as f
from tests.sinks.conftest import Backend


@pytest.fixture
def loaded(migrated: Backend) -> Backend:
    migrated.store.write_events([f.liquidation(i, ts=f.T0 + i * 1000) for i in range(3)])
    migrated.client.database = migrated.database
    return migrated


QUERY = "SELECT event_id, price, avg_price, ts_event FROM liquidations FINAL ORDER BY event_id"


def test_table_output_is_aligned_with_a_row_count(loaded: Backend) -> None:
    out = run_sql(loaded.client, QUERY).splitlines()
    assert out[0].split() == ["event_id", "price", "avg_price", "ts_event"]
    assert set(out[1].replace(" ", "")) == {"-"}
    assert out[2].split() == ["binance:BTC:0", "112350.1", "NULL", "2025-10-10", "21:00:00"]
    assert out[3].split()[2] == "112395.04"  # odd rows carry an avg price
    assert out[-1] == "(3 rows)"
    # Every line of the table has its columns at the same offsets.
    starts = {line.index(line.split()[1]) + len(line.split()[1]) for line in out[2:5]}
    assert len(starts) == 1  # numbers are right-aligned: they end in the same column


def test_csv_and_json_outputs_parse_back(loaded: Backend) -> None:
    rows = list(csv.reader(io.StringIO(run_sql(loaded.client, QUERY, "csv"))))
    assert rows[0] == ["event_id", "price", "avg_price", "ts_event"]
    assert rows[1] == ["binance:BTC:0", "112350.1", "", "2025-10-10 21:00:00"]
    assert len(rows) == 4
    records = json.loads(run_sql(loaded.client, QUERY, "json"))
    assert records[1] == {
        "event_id": "binance:BTC:1",
        "price": 112350.1,
        "avg_price": pytest.approx(112350.1 * 1.0004),
        "ts_event": "2025-10-10 21:00:01.000",
    }


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO liquidations (event_id) VALUES ('x')",
        "DROP TABLE liquidations",
        "  -- a comment first\n  OPTIMIZE TABLE liquidations FINAL",
        "ALTER TABLE liquidations DELETE WHERE 1",
        "SELECT 1; TRUNCATE TABLE liquidations",
    ],
)
def test_read_only_refuses_writes_with_a_clear_message(loaded: Backend, statement: str) -> None:
    with pytest.raises(SqlError, match=r"read-only.*pass --write"):
        run_sql(loaded.client, statement)
    assert loaded.client.command("SELECT count() FROM liquidations FINAL") == 3


def test_reads_run_with_clickhouse_readonly(loaded: Backend) -> None:
    out = run_sql(loaded.client, "SELECT getSetting('readonly') AS ro", "csv")
    assert out.splitlines() == ["ro", "2"]


def test_write_mode_runs_statements_and_scripts(loaded: Backend) -> None:
    script = """
        CREATE TABLE notes (id UInt32, text String) ENGINE = MergeTree ORDER BY id;
        INSERT INTO notes VALUES (1, 'a'), (2, 'b');
        SELECT count() AS n FROM notes
    """
    out = run_sql(loaded.client, script, "csv", readonly=False)
    assert out.split("\n\n")[-1].splitlines() == ["n", "2"]
    assert run_sql(
        loaded.client, "SELECT getSetting('readonly') AS ro", "csv", readonly=False
    ).endswith("0")


def test_bad_requests_are_clear_errors(loaded: Backend) -> None:
    with pytest.raises(SqlError, match="unknown format"):
        run_sql(loaded.client, "SELECT 1", "xml")  # type: ignore[arg-type]
    with pytest.raises(SqlError, match="no SQL statement"):
        run_sql(loaded.client, "  -- nothing\n")
    with pytest.raises(SqlError, match="unterminated"):
        run_sql(loaded.client, "SELECT 'oops")


def test_statement_keywords() -> None:
    assert statement_keyword("/* hi */ (SELECT 1)") == "SELECT"
    assert statement_keyword("\n-- c\nwith x as (select 1) select * from x") == "WITH"
    assert (
        is_read("DESC liquidations") and is_read("EXISTS TABLE alerts") and is_read("SHOW TABLES")
    )
    assert not is_read("SYSTEM STOP MERGES")


def test_format_result_handles_nested_and_special_values() -> None:
    out = format_result(["a", "m", "x"], [([1, 2], {"k": 1.5}, float("nan"))], "json")
    assert json.loads(out) == [{"a": [1, 2], "m": {"k": 1.5}, "x": None}]
    table = format_result(["a", "m"], [([1, 2], {"k": 1.5})], "table")
    assert '[1,2]  {"k":1.5}' in table


def test_works_when_clickhouse_is_read_only_already(migrated: Backend) -> None:
    """Like the chart's analyst user (readonly = 1), who may not change any setting at all."""
    if migrated.name != "server":
        return  # a per-request readonly setting is an HTTP-server feature
    migrated.store.write_events([f.liquidation(1)])
    server = urlsplit(migrated.settings.url)
    client = clickhouse_connect.get_client(
        host=server.hostname, port=server.port, database=migrated.database, settings={"readonly": 1}
    )
    try:
        out = run_sql(client, "SELECT count() AS n FROM liquidations FINAL", "csv")
        assert out.splitlines() == ["n", "1"]
        with pytest.raises(DatabaseError, match=r"(?i)readonly"):
            run_sql(client, "INSERT INTO liquidations (event_id) VALUES ('x')", readonly=False)
    finally:
        client.close()
