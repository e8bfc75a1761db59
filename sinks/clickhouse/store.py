"""Columnar writes of every liqwatch record to ClickHouse: one insert per table per call.

Used by the embedded runner and by the Kafka sink. Inserts are synchronous (``async_insert=0``)
so a returned call means the rows are stored. A ``dedupe_token`` makes a retried call
harmless: ClickHouse drops a block whose token it has already seen (the tables keep a
deduplication window), and so does the 1-minute aggregate view.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.httpclient import HttpClient

from liqwatch.schema import (
    Alert,
    AlertUpdate,
    DeadLetter,
    Delivery,
    EventKind,
    HeatmapSnapshot,
    Liquidation,
    MarketEvent,
    MarkPrice,
    OpenInterest,
    Outcome,
    Signal,
)
from sinks.clickhouse import rows as r
from sinks.clickhouse.envelopes import ENVELOPE_TABLES, STRICT_JSON_SETTINGS, envelope_insert_sql
from sinks.clickhouse.migrate import check_identifier

_LOW_CARDINALITY = re.compile(r"LowCardinality\(((?:[^()]|\([^()]*\))*)\)")


def plain_type(type_name: str) -> str:
    """The type without LowCardinality wrappers.

    clickhouse-connect builds LowCardinality dictionaries in Python, which costs more than the
    rest of the insert; sent as plain String the server converts on its side, much faster.
    """
    while True:
        stripped = _LOW_CARDINALITY.sub(r"\1", type_name)
        if stripped == type_name:
            return stripped
        type_name = stripped


class Store:
    """Writes records to the liqwatch tables of ``database`` (created by ``migrate``)."""

    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.database = check_identifier(database)
        self._types: dict[str, dict[str, Any]] = {}
        self._type_names: dict[str, dict[str, str]] = {}
        self._envelope_sql: dict[EventKind, bytes] = {}
        self._type_lists: dict[tuple[str, tuple[str, ...]], list[Any]] = {}

    # -- generic -------------------------------------------------------------------------
    def insert(self, rows: r.TableRows, dedupe_token: str | None = None) -> int:
        """Insert one table's rows in one statement; return the number of rows sent."""
        if rows.count == 0:
            return 0
        settings: dict[str, Any] = {"async_insert": 0}
        if dedupe_token is not None:
            settings["insert_deduplication_token"] = f"{dedupe_token}:{rows.table}"
        self.client.insert(
            rows.table,
            rows.columns,
            database=self.database,
            column_names=list(rows.names),
            column_types=self._column_types(rows.table, rows.names),
            column_oriented=True,
            settings=settings,
        )
        return rows.count

    def insert_all(
        self, tables: Iterable[r.TableRows], dedupe_token: str | None = None
    ) -> dict[str, int]:
        return {t.table: self.insert(t, dedupe_token) for t in tables if t.count}

    @property
    def parses_envelopes(self) -> bool:
        """Whether the server can take envelope JSON as it came (not the embedded engine)."""
        return isinstance(self.client, HttpClient)

    def insert_envelopes(
        self,
        kind: EventKind,
        envelopes: Sequence[bytes],
        rows: int,
        dedupe_token: str | None = None,
    ) -> int:
        """Insert the events of JSON envelopes in one statement, parsed by the server.

        ``rows`` is the number of events, counted by the caller (the server's written_rows
        also counts the rows of materialized views).
        """
        if rows == 0:
            return 0
        table = ENVELOPE_TABLES[kind][0]
        settings = dict(STRICT_JSON_SETTINGS)
        if dedupe_token is not None:
            settings["insert_deduplication_token"] = f"{dedupe_token}:{table}"
        # The statement leads the body and the envelopes follow it, sent one by one as they
        # came (a Content-Length lets urllib3 send them without joining or chunk framing).
        # command(sql, data=...) would also decode the whole body to classify the statement.
        parts = [self._envelope_insert(kind)]
        for value in envelopes:
            parts += (b"\n", value)
        length = {"Content-Length": str(sum(map(len, parts)))}
        self.client.raw_insert(
            None,  # type: ignore[arg-type]
            insert_block=parts,  # type: ignore[arg-type]
            settings=settings,
            transport_settings=length,
        )
        return rows

    def _envelope_insert(self, kind: EventKind) -> bytes:
        sql = self._envelope_sql.get(kind)
        if sql is None:
            table, event_type = ENVELOPE_TABLES[kind]
            text = envelope_insert_sql(self.database, table, event_type, self._describe(table))
            sql = self._envelope_sql[kind] = text.encode()
        return sql

    def _describe(self, table: str) -> dict[str, str]:
        names = self._type_names.get(table)
        if names is None:
            described = self.client.query(f"DESCRIBE TABLE {self.database}.{table}").result_rows
            names = self._type_names[table] = {row[0]: row[1] for row in described}
        return names

    def _column_types(self, table: str, names: tuple[str, ...]) -> list[Any]:
        found = self._type_lists.get((table, names))
        if found is None:
            found = self._type_lists[(table, names)] = self._lookup_types(table, names)
        return found

    def _lookup_types(self, table: str, names: Sequence[str]) -> list[Any]:
        types = self._types.get(table)
        if types is None:
            described = self._describe(table)
            types = {name: get_from_name(plain_type(t)) for name, t in described.items()}
            self._types[table] = types
        return [types[name] for name in names]

    # -- per record family ---------------------------------------------------------------
    def write_events(
        self, events: Sequence[MarketEvent], dedupe_token: str | None = None
    ) -> dict[str, int]:
        liquidations = [e for e in events if isinstance(e, Liquidation)]
        open_interest = [e for e in events if isinstance(e, OpenInterest)]
        mark_prices = [e for e in events if isinstance(e, MarkPrice)]
        return self.insert_all(
            [
                r.liquidation_rows(liquidations),
                r.open_interest_rows(open_interest),
                r.mark_price_rows(mark_prices),
            ],
            dedupe_token,
        )

    def write_signals(
        self, signals: Sequence[Signal], dedupe_token: str | None = None
    ) -> dict[str, int]:
        heatmaps = [s for s in signals if isinstance(s, HeatmapSnapshot)]
        others = [s for s in signals if not isinstance(s, HeatmapSnapshot)]
        return self.insert_all([r.heatmap_rows(heatmaps), r.signal_rows(others)], dedupe_token)

    def write_alerts(self, alerts: Sequence[Alert], dedupe_token: str | None = None) -> int:
        return self.insert(r.alert_rows(alerts), dedupe_token)

    def write_alert_updates(
        self, updates: Sequence[AlertUpdate], dedupe_token: str | None = None
    ) -> int:
        return self.insert(r.alert_update_rows(updates), dedupe_token)

    def write_outcomes(
        self,
        outcomes: Sequence[tuple[str, Outcome]],
        computed_at: int | None = None,
        dedupe_token: str | None = None,
    ) -> int:
        """Outcome per (alert_id, horizon); a later ``computed_at`` replaces an earlier one."""
        stamp = computed_at if computed_at is not None else int(time.time() * 1000)
        return self.insert(r.outcome_rows(outcomes, stamp), dedupe_token)

    def write_deliveries(
        self, deliveries: Sequence[Delivery], dedupe_token: str | None = None
    ) -> int:
        return self.insert(r.delivery_rows(deliveries), dedupe_token)

    def write_dead_letters(
        self, letters: Sequence[DeadLetter], dedupe_token: str | None = None
    ) -> int:
        return self.insert(r.dead_letter_rows(letters), dedupe_token)
