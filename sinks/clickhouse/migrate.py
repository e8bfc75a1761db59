"""Versioned schema migrations: ``migrations/NNNN_name.sql`` applied in order, once each.

Applied versions are recorded in ``<database>.schema_migrations``. Every statement is written
to be re-runnable (``IF NOT EXISTS``, guarded backfills), so a migration interrupted half-way
is simply run again. A database whose schema is newer than this code refuses to migrate.
"""

from __future__ import annotations

import hashlib
import logging
import re
import string
from dataclasses import dataclass
from importlib import resources

from clickhouse_connect.driver.client import Client

from sinks.settings import RetentionSettings

log = logging.getLogger(__name__)

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# TTL placeholder -> (setting, time column, tables). The same map drives later TTL changes.
TTL_TARGETS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "raw_ttl": ("raw_ttl_days", "ts_event", ("liquidations", "open_interest", "mark_price")),
    "heatmap_ttl": ("heatmap_ttl_days", "ts", ("heatmap",)),
    "signal_ttl": ("signal_ttl_days", "ts", ("signals",)),
    "aggregate_ttl": ("aggregate_ttl_days", "ts_minute", ("liquidations_1m",)),
    "dead_letter_ttl": ("dead_letter_ttl_days", "ts_recv", ("dead_letters",)),
}


class MigrationError(RuntimeError):
    """A migration could not be applied."""


class SchemaTooNewError(MigrationError):
    """The database was migrated by a newer liqwatch than this one."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    template: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()[:16]

    def statements(self, database: str, retention: RetentionSettings) -> list[str]:
        values = {"db": database, **ttl_clauses(retention)}
        try:
            sql = string.Template(self.template).substitute(values)
        except (KeyError, ValueError) as exc:
            raise MigrationError(f"migration {self.version:04d}: bad placeholder {exc}") from exc
        return split_statements(sql)


def load_migrations() -> list[Migration]:
    """All migrations shipped in the package, in version order."""
    found = []
    for entry in resources.files("sinks.clickhouse.migrations").iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions: {versions}")
    return found


def latest_version() -> int:
    return max(m.version for m in load_migrations())


def ttl_clause(column: str, days: int) -> str:
    return f"TTL toDateTime({column}) + toIntervalDay({days})" if days > 0 else ""


def ttl_clauses(retention: RetentionSettings) -> dict[str, str]:
    return {
        placeholder: ttl_clause(column, getattr(retention, setting))
        for placeholder, (setting, column, _tables) in TTL_TARGETS.items()
    }


def check_identifier(name: str) -> str:
    if not _IDENT_RE.match(name):
        raise MigrationError(f"invalid database name {name!r}: use letters, digits and _")
    return name


def migrate(client: Client, database: str, retention: RetentionSettings | None = None) -> list[int]:
    """Bring ``database`` to the latest schema; return the versions applied by this call.

    ``retention`` (default: from ``LIQWATCH_CLICKHOUSE_*_TTL_DAYS``) sets table TTLs; TTLs
    of existing tables are changed to match when they differ. A client without a default
    database (``connect`` selects one only if it existed) gets ``database`` as its default,
    so queries that name tables alone work right after the first migration.
    """
    check_identifier(database)
    retention = retention if retention is not None else RetentionSettings()
    migrations = load_migrations()
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    _ensure_history_table(client, database)
    applied = applied_versions(client, database)
    _refuse_newer(database, applied, migrations)
    done = []
    for migration in migrations:
        if migration.version in applied:
            continue
        _apply(client, database, migration, retention)
        done.append(migration.version)
    apply_retention(client, database, retention)
    if client.database is None:
        client.database = database
    return done


def _ensure_history_table(client: Client, database: str) -> None:
    client.command(
        f"""CREATE TABLE IF NOT EXISTS {database}.schema_migrations (
            version UInt32 COMMENT 'Migration number (NNNN of NNNN_name.sql)',
            name String COMMENT 'Migration name',
            checksum String COMMENT 'Hash of the migration file as applied',
            applied_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When it was applied'
        ) ENGINE = ReplacingMergeTree ORDER BY version
        COMMENT 'Schema versions applied by liqwatch db migrate'"""
    )


def applied_versions(client: Client, database: str) -> dict[int, str]:
    """Applied version -> checksum recorded when it was applied."""
    rows = client.query(
        # The database name is a checked identifier; nothing else is interpolated.
        f"SELECT version, any(checksum) FROM {check_identifier(database)}.schema_migrations "  # noqa: S608
        "GROUP BY version"
    ).result_rows
    return {int(version): str(checksum) for version, checksum in rows}


def schema_version(client: Client, database: str) -> int:
    """Highest applied version, 0 for a database never migrated."""
    return max(applied_versions(client, database), default=0)


def _refuse_newer(database: str, applied: dict[int, str], migrations: list[Migration]) -> None:
    known = {m.version: m for m in migrations}
    newest = max(applied, default=0)
    if newest > max(known):
        raise SchemaTooNewError(
            f"database {database!r} has schema version {newest}, but this liqwatch knows "
            f"migrations up to {max(known)} only: upgrade liqwatch before writing to it"
        )
    for version, checksum in applied.items():
        if version in known and checksum != known[version].checksum:
            log.warning(
                "migration %04d_%s changed since it was applied to %s (recorded %s, now %s)",
                version,
                known[version].name,
                database,
                checksum,
                known[version].checksum,
            )


def _apply(
    client: Client, database: str, migration: Migration, retention: RetentionSettings
) -> None:
    log.info("applying migration %04d_%s to %s", migration.version, migration.name, database)
    for index, statement in enumerate(migration.statements(database, retention), 1):
        try:
            client.command(statement, settings={"async_insert": 0})
        except Exception as exc:
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} statement {index} "
                f"failed: {exc}"
            ) from exc
    client.insert(
        "schema_migrations",
        [[migration.version, migration.name, migration.checksum]],
        database=database,
        column_names=["version", "name", "checksum"],
        settings={"async_insert": 0},
    )


def apply_retention(client: Client, database: str, retention: RetentionSettings) -> list[str]:
    """Make each table's TTL match ``retention``; return the tables changed."""
    changed = []
    rows = client.query(
        "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
        parameters={"db": database},
    ).result_rows
    engines = {str(name): str(engine) for name, engine in rows}
    for setting, column, tables in TTL_TARGETS.values():
        wanted = ttl_clause(column, getattr(retention, setting))
        for table in tables:
            if table in engines and _set_ttl(client, database, table, engines[table], wanted):
                changed.append(table)
    return changed


def _set_ttl(client: Client, database: str, table: str, engine_full: str, wanted: str) -> bool:
    current = re.search(r"\bTTL (.+?)(?= SETTINGS | COMMENT |$)", engine_full)
    if (current.group(0) if current else "") == wanted:
        return False
    if wanted:
        # Metadata only: old parts expire at their next merge instead of a full rewrite now.
        client.command(
            f"ALTER TABLE {database}.{table} MODIFY {wanted}",
            settings={"materialize_ttl_after_modify": 0},
        )
    else:
        client.command(f"ALTER TABLE {database}.{table} REMOVE TTL")
    log.info("%s.%s: TTL now %r", database, table, wanted or "none")
    return True


def split_statements(sql: str) -> list[str]:
    """Split a SQL script on ``;`` outside quotes and comments; drop comment-only pieces."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
            continue
        if ch in "'`\"":
            end = _quoted_end(sql, i)
            current.append(sql[i:end])
            i = end
            continue
        if ch == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def _quoted_end(sql: str, start: int) -> int:
    """Index just past the literal/identifier starting at ``start`` ('' and \\ escapes)."""
    quote, i = sql[start], start + 1
    while i < len(sql):
        if sql[i] == "\\":
            i += 2
            continue
        if sql[i] == quote:
            if sql.startswith(quote * 2, i):
                i += 2
                continue
            return i + 1
        i += 1
    raise MigrationError(f"unterminated quote starting at offset {start}")
