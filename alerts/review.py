"""``liqwatch alerts review``: recent alerts with final status and outcome, and hit rate per kind.

Reads the sink's tables ``alerts``, ``alert_updates`` and ``alert_outcomes`` (ReplacingMergeTree:
read with FINAL). Time columns may be DateTime64 or integer milliseconds; both are handled.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from string import Template
from typing import Any

from clickhouse_connect.driver.client import Client

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ReviewError(ValueError):
    """Bad arguments (e.g. a database name that is not an identifier)."""


def review(client: Client, database: str, since_ms: int, limit: int = 50) -> str:
    """A plain-text report of alerts created at or after ``since_ms`` (newest first)."""
    if not _IDENT.match(database):
        raise ReviewError(f"not a database name: {database!r}")
    if limit < 1:
        raise ReviewError("limit must be at least 1")
    tables = _Tables(client, database)
    alerts = _recent_alerts(client, tables, since_ms, limit)
    statuses = _latest_statuses(client, tables, [row["alert_id"] for row in alerts])
    outcomes = _outcomes(client, tables, [row["alert_id"] for row in alerts])
    rates = _hit_rates(client, tables, since_ms)
    since = _utc(since_ms)
    parts = [f"Alerts since {since} (newest first, at most {limit})", ""]
    if alerts:
        parts.append(_alerts_table(alerts, statuses, outcomes))
    else:
        parts.append("(no alerts)")
    parts += ["", "Hit rate per kind (alerts with a measured outcome)", ""]
    parts.append(_rates_table(rates) if rates else "(no outcomes yet)")
    return "\n".join(parts)


class _Tables:
    """Column types and engines, so the queries fit the schema actually deployed."""

    def __init__(self, client: Client, database: str) -> None:
        self.db = database
        rows = client.query(
            "SELECT table, name, type FROM system.columns WHERE database = {db:String}",
            parameters={"db": database},
        ).result_rows
        self._types = {(str(t), str(n)): str(ty) for t, n, ty in rows}
        engines = client.query(
            "SELECT name, engine FROM system.tables WHERE database = {db:String}",
            parameters={"db": database},
        ).result_rows
        self._engines = {str(n): str(e) for n, e in engines}
        for table in ("alerts", "alert_updates", "alert_outcomes"):
            if table not in self._engines:
                raise ReviewError(f"table {database}.{table} does not exist (run the migrations)")

    def source(self, table: str, alias: str = "") -> str:
        """``db.table [AS alias] [FINAL]``: FINAL collapses replaced rows where it applies."""
        named = f"{self.db}.{table} AS {alias}" if alias else f"{self.db}.{table}"
        final = " FINAL" if "Replacing" in self._engines.get(table, "") else ""
        return named + final

    def ms(self, table: str, column: str) -> str:
        """SQL giving the column as epoch milliseconds."""
        kind = self._types.get((table, column), "")
        if "DateTime64" in kind:
            return f"toUnixTimestamp64Milli({column})"
        if "DateTime" in kind:
            return f"toInt64(toUnixTimestamp({column})) * 1000"
        return f"toInt64({column})"


def _query(client: Client, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=params)
    names = result.column_names
    return [dict(zip(names, row, strict=True)) for row in result.result_rows]


# Identifiers ($names) are substituted from validated names; values are bound parameters.
_RECENT = Template(
    "SELECT alert_id, kind, subkind, asset, side, severity, $created AS created_ms, "
    "price_at_alert, invalidation, status, title FROM $alerts "
    "WHERE $created >= {since:Int64} ORDER BY created_ms DESC, alert_id LIMIT {limit:UInt32}"
)
_STATUSES = Template(
    "SELECT alert_id, argMax(status, seq) AS status FROM $updates "
    "WHERE alert_id IN {ids:Array(String)} AND subkind != 'outcome' GROUP BY alert_id"
)
_OUTCOMES = Template(
    "SELECT alert_id, horizon_min, price_after, max_favourable_pct, max_adverse_pct, hit "
    "FROM $outcomes WHERE alert_id IN {ids:Array(String)} ORDER BY alert_id, horizon_min"
)
_HIT_RATES = Template(
    "SELECT a.kind AS kind, o.horizon_min AS horizon_min, count() AS measured, "
    "countIf(o.hit) AS hits FROM $outcomes "
    "INNER JOIN (SELECT alert_id, kind FROM $alerts WHERE $created >= {since:Int64}) AS a "
    "ON a.alert_id = o.alert_id GROUP BY kind, horizon_min ORDER BY kind, horizon_min"
)


def _recent_alerts(
    client: Client, tables: _Tables, since_ms: int, limit: int
) -> list[dict[str, Any]]:
    sql = _RECENT.substitute(
        created=tables.ms("alerts", "created_at"), alerts=tables.source("alerts")
    )
    return _query(client, sql, {"since": since_ms, "limit": limit})


def _latest_statuses(client: Client, tables: _Tables, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    sql = _STATUSES.substitute(updates=tables.source("alert_updates"))
    return {r["alert_id"]: r["status"] for r in _query(client, sql, {"ids": list(ids)})}


def _outcomes(
    client: Client, tables: _Tables, ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    if not ids:
        return {}
    sql = _OUTCOMES.substitute(outcomes=tables.source("alert_outcomes"))
    found: dict[str, list[dict[str, Any]]] = {}
    for row in _query(client, sql, {"ids": list(ids)}):
        found.setdefault(row["alert_id"], []).append(row)
    return found


def _hit_rates(client: Client, tables: _Tables, since_ms: int) -> list[dict[str, Any]]:
    sql = _HIT_RATES.substitute(
        outcomes=tables.source("alert_outcomes", alias="o"),
        alerts=tables.source("alerts"),
        created=tables.ms("alerts", "created_at"),
    )
    return _query(client, sql, {"since": since_ms})


# --- text tables ---------------------------------------------------------------------------


def _alerts_table(
    alerts: list[dict[str, Any]],
    statuses: dict[str, str],
    outcomes: dict[str, list[dict[str, Any]]],
) -> str:
    headers = [
        "created (UTC)",
        "asset",
        "kind",
        "side",
        "severity",
        "price",
        "invalid.",
        "status",
        "outcome",
    ]
    rows = []
    for a in alerts:
        rows.append(
            [
                _utc(int(a["created_ms"]))[:19],
                str(a["asset"]),
                f"{a['kind']}/{a['subkind']}",
                str(a["side"] or "-"),
                str(a["severity"]),
                f"{float(a['price_at_alert']):,.2f}",
                f"{float(a['invalidation']):,.2f}",
                statuses.get(a["alert_id"], str(a["status"])),
                _outcome_cell(outcomes.get(a["alert_id"], [])),
            ]
        )
    return _table(headers, rows)


def _outcome_cell(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "pending"
    cells = []
    for o in rows:
        mark = "hit" if o["hit"] else "miss"
        cells.append(
            f"{o['horizon_min']}m {mark} +{float(o['max_favourable_pct']):.2f}"
            f"/-{float(o['max_adverse_pct']):.2f}%"
        )
    return ", ".join(cells)


def _rates_table(rates: list[dict[str, Any]]) -> str:
    headers = ["kind", "horizon", "measured", "hits", "hit rate"]
    rows = [
        [
            str(r["kind"]),
            f"{r['horizon_min']} min",
            str(r["measured"]),
            str(r["hits"]),
            f"{100.0 * int(r['hits']) / max(1, int(r['measured'])):.1f}%",
        ]
        for r in rates
    ]
    return _table(headers, rows)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
