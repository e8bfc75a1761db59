"""Connecting (server and embedded URLs), settings validation, the hot-path decoding types."""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from liqwatch import codec
from liqwatch.schema import Envelope, EventKind, Liquidation, MarkPrice, OpenInterest
from liqwatch.settings import ClickHouseSettings
from liqwatch.stack._proc import free_port
from sinks.batch import PoisonError, Role, decode_records
from sinks.clickhouse.connect import ConnectError, chdb_path, connect, redact
from sinks.settings import RetentionSettings, SinkSettings
from tests.sinks import factories as f


def test_chdb_urls_name_a_data_directory_or_memory(tmp_path: Path) -> None:
    assert chdb_path(f"chdb://{tmp_path}/data") == str(tmp_path / "data")
    assert chdb_path("chdb://memory") is None
    assert chdb_path("chdb://") is None
    assert chdb_path("chdb://~/x").startswith(str(Path.home()))  # type: ignore[union-attr]


def test_embedded_client_selects_an_existing_database(chdb_client: object, chdb_path: Path) -> None:
    del chdb_client  # holds the engine open on chdb_path for this module
    settings = ClickHouseSettings(url=f"chdb://{chdb_path}", database="system")
    client = connect(settings)
    try:
        assert client.command("SELECT currentDatabase()") == "system"
    finally:
        client.close()


def test_server_client_selects_the_database_only_once_it_exists(
    clickhouse_server: object, ch_database: str
) -> None:
    url = clickhouse_server.url  # type: ignore[attr-defined]
    present = connect(ClickHouseSettings(url=url, database=ch_database))
    absent = connect(ClickHouseSettings(url=url, database="not_there_yet"))
    try:
        assert present.command("SELECT currentDatabase()") == ch_database
        assert absent.command("SELECT currentDatabase()") == "default"
    finally:
        present.close()
        absent.close()


def test_unusable_urls_are_clear_errors() -> None:
    with pytest.raises(ConnectError, match="unsupported ClickHouse URL"):
        connect(ClickHouseSettings(url="clickhouse://127.0.0.1:9000"))
    started = time.monotonic()
    with pytest.raises(ConnectError, match=r"cannot connect to ClickHouse at http://127\.0\.0\.1"):
        connect(ClickHouseSettings(url=f"http://127.0.0.1:{free_port()}"), connect_timeout=2)
    assert time.monotonic() - started < 30


def test_passwords_stay_out_of_messages_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-pa55"
    port = free_port()
    settings = ClickHouseSettings(
        url=f"http://127.0.0.1:{port}", username="analyst", password=SecretStr(secret)
    )
    assert secret not in repr(settings)
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectError) as err:
        connect(settings, connect_timeout=1)
    assert secret not in str(err.value)
    assert secret not in caplog.text
    in_url = ClickHouseSettings(url=f"http://analyst:{secret}@127.0.0.1:{port}")
    assert redact(in_url.url) == f"http://127.0.0.1:{port}"
    with pytest.raises(ConnectError, match="LIQWATCH_CLICKHOUSE_PASSWORD") as err:
        connect(in_url)
    assert secret not in str(err.value)


def test_sink_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIQWATCH_SINK_BATCH_MAX_ROWS", "1000")
    monkeypatch.setenv("LIQWATCH_SINK_BUFFER_MAX_ROWS", "4000")
    monkeypatch.setenv("LIQWATCH_KAFKA_TOPIC_PREFIX", "x.")
    monkeypatch.setenv("LIQWATCH_CLICKHOUSE_PASSWORD", "pw")
    monkeypatch.setenv("LIQWATCH_CLICKHOUSE_RAW_TTL_DAYS", "90")
    settings = SinkSettings()
    assert (settings.batch_max_rows, settings.buffer_max_rows) == (1000, 4000)
    assert settings.replay_rows == 4000
    assert settings.kafka.topic_prefix == "x."
    assert settings.clickhouse.password.get_secret_value() == "pw"
    assert settings.retention.raw_ttl_days == 90
    assert "pw" not in repr(settings)


def test_sink_settings_reject_a_batch_larger_than_the_buffer() -> None:
    with pytest.raises(ValidationError, match="must not exceed buffer_max_rows"):
        SinkSettings(batch_max_rows=10, buffer_max_rows=5)
    with pytest.raises(ValidationError):
        RetentionSettings(raw_ttl_days=-1)


def test_market_envelopes_decode_to_untracked_schema_events() -> None:
    # Hundreds of thousands of live events: the cyclic GC must not have to sweep them.
    events: list[Liquidation | OpenInterest | MarkPrice] = [
        f.liquidation(1),
        f.open_interest(2),
        f.mark_price(3),
    ]
    raw = codec.encode(
        Envelope(
            kind=EventKind.LIQUIDATION, asset="BTC", producer="p", seq=1, ts_flush=1, events=events
        )
    )
    decoded = decode_records(Role.MARKET, raw)
    assert list(decoded) == events
    assert [type(e) for e in decoded] == [type(e) for e in events]
    assert not any(gc.is_tracked(e) for e in decoded)


@pytest.mark.parametrize(
    ("role", "value", "reason"),
    [
        (Role.MARKET, None, "empty message"),
        (Role.MARKET, b'{"kind":"liquidation"}', "missing required field"),
        (Role.SIGNALS, b'{"type":"nope"}', "Invalid value 'nope'"),
        (Role.ALERTS, b"\xff\xfe", "DecodeError"),
        (Role.DELIVERIES, b"[]", "Expected `object`"),
    ],
)
def test_undecodable_messages_are_poison_with_a_reason(
    role: Role, value: bytes | None, reason: str
) -> None:
    with pytest.raises(PoisonError, match=reason):
        decode_records(role, value)
