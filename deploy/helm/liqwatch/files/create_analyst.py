"""Create (or rotate) the read-only analyst user in ClickHouse; run by the chart's hook Job.

Reads the LIQWATCH_CLICKHOUSE_* settings of the writer user and LIQWATCH_ANALYST_USERNAME /
LIQWATCH_ANALYST_PASSWORD. The password never reaches a log: errors are redacted.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit

import clickhouse_connect


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(value: str) -> str:
    return "`" + value.replace("\\", "\\\\").replace("`", "\\`") + "`"


def analyst_statements(user: str, password: str, database: str) -> list[str]:
    """CREATE then ALTER, so a re-run (helm upgrade) also rotates the password."""
    who = quote_identifier(user)
    auth = f"IDENTIFIED WITH sha256_password BY {quote_string(password)}"
    return [
        f"CREATE USER IF NOT EXISTS {who} {auth} SETTINGS readonly = 1",
        f"ALTER USER {who} {auth} SETTINGS readonly = 1",
        f"GRANT SELECT ON {quote_identifier(database)}.* TO {who}",
    ]


def connect(env: dict[str, str]):  # type: ignore[no-untyped-def]
    url = urlsplit(env["LIQWATCH_CLICKHOUSE_URL"])
    secure = url.scheme == "https"
    return clickhouse_connect.get_client(
        host=url.hostname or "localhost",
        port=url.port or (8443 if secure else 8123),
        secure=secure,
        username=env.get("LIQWATCH_CLICKHOUSE_USERNAME", "default"),
        password=env.get("LIQWATCH_CLICKHOUSE_PASSWORD", ""),
    )


def main(env: dict[str, str]) -> int:
    user = env["LIQWATCH_ANALYST_USERNAME"]
    password = env["LIQWATCH_ANALYST_PASSWORD"]
    database = env.get("LIQWATCH_CLICKHOUSE_DATABASE", "liqwatch")
    if not password:
        print("create_analyst: LIQWATCH_ANALYST_PASSWORD is empty", file=sys.stderr)
        return 2
    try:
        client = connect(env)
        for statement in analyst_statements(user, password, database):
            client.command(statement)
    except Exception as exc:  # any failure must end the Job, with the password redacted
        message = str(exc)
        for form in {password, quote_string(password)[1:-1]}:
            message = message.replace(form, "***")
        print(f"create_analyst: failed: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    print(f"create_analyst: user {user} can read {database}.* (readonly=1)")
    return 0


if __name__ == "__main__":
    sys.exit(main(dict(os.environ)))
