"""``liqwatch sql``: run analyst SQL against the history and format the result.

Read-only by default, enforced twice: only reading statements are accepted, and ClickHouse runs
them with ``readonly=2`` (reads and session settings, no writes or DDL) unless the user is
read-only already. ``readonly=False`` (``--write``) lifts both.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Literal
from uuid import UUID

from clickhouse_connect.driver.client import Client

from sinks.clickhouse.migrate import MigrationError, split_statements

Format = Literal["table", "csv", "json"]
FORMATS: tuple[Format, ...] = ("table", "csv", "json")
READ_KEYWORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")
_LEADING_NOISE = re.compile(r"^(?:\s+|--[^\n]*\n?|/\*.*?\*/|\()*", re.DOTALL)


class SqlError(ValueError):
    """A statement liqwatch sql will not run, or a script it cannot parse."""


def statement_keyword(statement: str) -> str:
    """First keyword of a statement, after comments and opening parentheses."""
    body = _LEADING_NOISE.sub("", statement, count=1)
    match = re.match(r"[A-Za-z]+", body)
    return match.group(0).upper() if match else ""


def is_read(statement: str) -> bool:
    return statement_keyword(statement) in READ_KEYWORDS


def run_sql(client: Client, query: str, fmt: Format = "table", readonly: bool = True) -> str:
    """Run one statement or a ``;``-separated script; return the formatted results."""
    if fmt not in FORMATS:
        raise SqlError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    try:
        statements = split_statements(query)
    except MigrationError as exc:
        raise SqlError(str(exc)) from exc
    if not statements:
        raise SqlError("no SQL statement given")
    if readonly:
        _refuse_writes(statements)
    settings = _readonly_settings(client) if readonly else {}
    outputs = [_run_one(client, s, fmt, settings) for s in statements]
    return "\n\n".join(outputs)


def _refuse_writes(statements: Sequence[str]) -> None:
    for statement in statements:
        if not is_read(statement):
            first = " ".join(statement.split())[:60]
            raise SqlError(
                f"read-only: liqwatch sql runs {'/'.join(READ_KEYWORDS)} statements only; "
                f"pass --write to run {first!r}"
            )


def _readonly_settings(client: Client) -> dict[str, Any]:
    # A user that is read-only already may not change settings at all, readonly included.
    current = client.command("SELECT getSetting('readonly')")
    return {} if str(current) != "0" else {"readonly": 2}


def _run_one(client: Client, statement: str, fmt: Format, settings: dict[str, Any]) -> str:
    if not is_read(statement):
        summary = client.command(statement, settings=settings)
        written = getattr(summary, "written_rows", None)
        return "OK" if written is None else f"OK ({written} rows written)"
    result = client.query(statement, settings=settings)
    return format_result(list(result.column_names), result.result_rows, fmt)


def format_result(columns: list[str], rows: Sequence[Sequence[Any]], fmt: Format) -> str:
    if fmt == "csv":
        return _csv(columns, rows)
    if fmt == "json":
        return _json(columns, rows)
    return _table(columns, rows)


def cell_text(value: Any) -> str:
    """How a value reads in the table and CSV outputs."""
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        spec = "milliseconds" if value.microsecond else "seconds"
        return value.isoformat(sep=" ", timespec=spec)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(_jsonable(value), separators=(",", ":"))
    return str(value)


def _float_text(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}" if abs(value) < 1e6 else f"{value:.2f}"


def _table(columns: list[str], rows: Sequence[Sequence[Any]]) -> str:
    texts = [[cell_text(v) for v in row] for row in rows]
    numeric = [
        bool(rows)
        and all(isinstance(row[i], (int, float, Decimal)) or row[i] is None for row in rows)
        for i in range(len(columns))
    ]
    widths = [max([len(c)] + [len(t[i]) for t in texts]) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(w) if num else cell.ljust(w)
            for cell, w, num in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out.extend(line(t) for t in texts)
    out.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(out)


def _csv(columns: list[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else cell_text(v) for v in row])
    return buf.getvalue().rstrip("\n")


def _json(columns: list[str], rows: Sequence[Sequence[Any]]) -> str:
    records = [dict(zip(columns, (_jsonable(v) for v in row), strict=True)) for row in rows]
    return json.dumps(records, indent=1, allow_nan=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf
    if isinstance(value, (date, Decimal, UUID, IPv4Address, IPv6Address)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
