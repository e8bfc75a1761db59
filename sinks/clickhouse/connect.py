"""One way to get a clickhouse-connect client, for a server URL or the embedded chDB engine.

``http://host:port`` (or ``https://``) reaches a ClickHouse server; ``chdb:///abs/path`` (or
``chdb://memory``) runs ClickHouse in this process through clickhouse-connect's chDB backend.
chDB hosts one data path per process: asking for a second path while a client on the first
is open fails with :class:`ConnectError`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from liqwatch.settings import ClickHouseSettings

CHDB_SCHEME = "chdb://"
_MEMORY = ("", "memory", ":memory:")


class ConnectError(RuntimeError):
    """ClickHouse could not be reached or the URL is not usable."""


def is_embedded(url: str) -> bool:
    return url.startswith(CHDB_SCHEME)


def chdb_path(url: str) -> str | None:
    """Data directory of a ``chdb://`` URL, or None for an in-memory engine."""
    location = url[len(CHDB_SCHEME) :]
    if location in _MEMORY:
        return None
    return str(Path(location).expanduser().resolve())


def connect(
    settings: ClickHouseSettings,
    *,
    connect_timeout: float = 10.0,
    send_receive_timeout: float = 300.0,
) -> Client:
    """A client for ``settings.url``; its default database is ``settings.database`` if it exists.

    A database that does not exist yet (before ``liqwatch db migrate``) is not selected, so the
    same client can create it; the store and the migrations always name the database anyway.
    """
    try:
        client = (
            _embedded(settings.url)
            if is_embedded(settings.url)
            else _server(settings, connect_timeout, send_receive_timeout)
        )
    except (ClickHouseError, OSError) as exc:
        raise ConnectError(
            f"cannot connect to ClickHouse at {redact(settings.url)}: {exc}"
        ) from exc
    if database_exists(client, settings.database):
        client.database = settings.database
    return client


def database_exists(client: Client, database: str) -> bool:
    found = client.command(
        "SELECT count() FROM system.databases WHERE name = {db:String}",
        parameters={"db": database},
    )
    return bool(found)


def _embedded(url: str) -> Client:
    path = chdb_path(url)
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
    try:
        return clickhouse_connect.get_client(interface="chdb", path=path)
    except ClickHouseError as exc:
        # chDB's own message ("another path is open") is terse; say what to do about it.
        raise ConnectError(
            f"embedded ClickHouse at {path or 'memory'} unavailable: {exc}. chDB allows one "
            "data path per process; close other clients or use the same path."
        ) from exc


def _server(settings: ClickHouseSettings, connect_timeout: float, timeout: float) -> Client:
    parts = urlsplit(settings.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectError(
            f"unsupported ClickHouse URL {redact(settings.url)!r}: use http://host:port, "
            "https://host:port or chdb:///path"
        )
    if parts.username is not None or parts.password is not None:
        # The URL is a plain setting that ends up in logs; the password is a secret.
        raise ConnectError(
            f"ClickHouse URL {redact(settings.url)!r} carries credentials: set "
            "LIQWATCH_CLICKHOUSE_USERNAME and LIQWATCH_CLICKHOUSE_PASSWORD instead"
        )
    return clickhouse_connect.get_client(
        host=parts.hostname,
        port=parts.port,
        secure=parts.scheme == "https",
        username=settings.username,
        password=settings.password.get_secret_value(),
        connect_timeout=connect_timeout,
        send_receive_timeout=timeout,
        client_name="liqwatch",
    )


def redact(url: str) -> str:
    """The URL without any user:password part, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()
