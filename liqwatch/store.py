"""Opens the ClickHouse store the CLI talks to: a server URL, or the embedded chDB in DATA_DIR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from liqwatch.settings import ClickHouseSettings


def embedded_url(data_dir: Path) -> str:
    return f"chdb://{(data_dir / 'clickhouse').resolve()}"


def clickhouse_settings(data_dir: Path, clickhouse_url: str | None) -> ClickHouseSettings:
    settings = ClickHouseSettings()
    url = clickhouse_url or embedded_url(data_dir)
    return settings.model_copy(update={"url": url})


def open_client(
    data_dir: Path, clickhouse_url: str | None, migrate_schema: bool = True
) -> tuple[Any, str]:
    """A clickhouse-connect client and the database name, with the schema migrated if asked."""
    from sinks.clickhouse.connect import connect  # noqa: PLC0415
    from sinks.clickhouse.migrate import migrate  # noqa: PLC0415

    if clickhouse_url is None:
        (data_dir / "clickhouse").mkdir(parents=True, exist_ok=True)
    settings = clickhouse_settings(data_dir, clickhouse_url)
    client = connect(settings)
    if migrate_schema:
        migrate(client, settings.database)
    return client, settings.database
