"""Fault injection: ClickHouse down for 30 s under load, and the sink SIGKILLed mid-stream.

Both end with every produced liquidation in ClickHouse exactly once (count and checksums
against what was produced) and the 1-minute aggregates counting each one once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from confluent_kafka import Producer

from liqwatch import codec
from liqwatch.schema import Liquidation
from liqwatch.settings import ClickHouseSettings
from liqwatch.stack._proc import free_port
from liqwatch.stack.chserver import ClickHouseServer
from liqwatch.topics import Topics
from tests.sinks import factories as f
from tests.sinks.kafka_helpers import (
    all_committed,
    produce,
    running_sink,
    sink_settings,
    wait_until,
)

PARTITIONS = 2
REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.servers, pytest.mark.slow]


@pytest.fixture
def topics(kafka_topics: Callable[..., list[str]]) -> Topics:
    created = kafka_topics(Topics("").all, PARTITIONS)
    return Topics(created[0].removesuffix("liquidations"))


def fresh_client(server: ClickHouseServer) -> Client:
    """A new client: pooled connections do not survive a server restart."""
    return clickhouse_connect.get_client(host=server.host, port=server.port)


def stored(server: ClickHouseServer, database: str) -> int:
    client = fresh_client(server)
    try:
        return int(str(client.command(f"SELECT count() FROM {database}.liquidations FINAL")))
    except Exception:
        return -1
    finally:
        client.close()


def assert_exactly_once(
    server: ClickHouseServer, database: str, produced: list[Liquidation]
) -> None:
    client = fresh_client(server)
    try:
        row = client.query(
            "SELECT count(), uniqExact(event_id), "
            "sum(toUInt64(splitByChar(':', event_id)[3])), round(sum(notional_usd), 2) "
            f"FROM {database}.liquidations FINAL"
        ).result_rows[0]
        raw = client.command(f"SELECT count() FROM {database}.liquidations")
        aggregated = client.command(f"SELECT sum(events) FROM {database}.liquidations_1m")
    finally:
        client.close()
    n = len(produced)
    assert row == (n, n, n * (n - 1) // 2, round(sum(x.notional_usd for x in produced), 2))
    assert raw == n, "duplicates reached the table"
    assert aggregated == n, "the 1-minute aggregates counted a liquidation twice (or missed one)"


# -- (a) ClickHouse down for 30 s while the sink consumes ------------------------------------
def _produce_paced(bootstrap: str, topic: str, events: list[Liquidation], seconds: float) -> None:
    """A live-like stream: envelopes of 200 spread evenly over ``seconds``."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    envelopes = list(f.envelopes(events, 200))
    started = time.monotonic()
    for i, envelope in enumerate(envelopes):
        delay = started + seconds * i / len(envelopes) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        producer.produce(topic, value=codec.encode(envelope), key=f"k{i % 7}")
        producer.poll(0)
    assert producer.flush(30) == 0


def _readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_clickhouse_down_for_30s_loses_nothing_and_respects_the_buffer_bound(
    kafka_bootstrap: str, topics: Topics, clickhouse_server: ClickHouseServer, ch_database: str
) -> None:
    events = f.random_liquidations(200_000, seed=31)
    bound = 10_000
    settings = sink_settings(
        kafka_bootstrap,
        topics,
        ClickHouseSettings(url=clickhouse_server.url, database=ch_database),
        batch_max_rows=2_000,
        buffer_max_rows=bound,
        metrics_port=free_port(),
    )
    producer = threading.Thread(
        target=_produce_paced, args=(kafka_bootstrap, topics.liquidations, events, 40.0)
    )
    paused_seen = threading.Event()
    with running_sink(settings) as sink:
        producer.start()
        wait_until(lambda: stored(clickhouse_server, ch_database) > 20_000, 30, "first rows stored")
        clickhouse_server.stop()
        outage_end = time.monotonic() + 30
        try:
            while time.monotonic() < outage_end:
                if sink.metric("liqwatch_sink_paused") == 1:
                    paused_seen.set()
                time.sleep(0.2)
            status, why = _readyz(settings.metrics_port or 0)
            assert status == 503 and "ClickHouse unreachable" in why
            assert sink.metric("liqwatch_sink_insert_failures_total") > 0
        finally:
            clickhouse_server.start()
        producer.join(60)
        wait_until(lambda: stored(clickhouse_server, ch_database) == len(events), 60, "catch-up")
        wait_until(
            lambda: all_committed(
                kafka_bootstrap, settings.group_id, topics.liquidations, PARTITIONS
            ),
            30,
            "commit",
        )
        wait_until(lambda: _readyz(settings.metrics_port or 0)[0] == 200, 15, "ready again")
        high_water = sink.metric("liqwatch_sink_buffer_rows_high_water")
    assert paused_seen.is_set(), "the sink never paused consumption while ClickHouse was down"
    assert bound * 0.5 < high_water <= bound
    assert_exactly_once(clickhouse_server, ch_database, events)


# -- (b) SIGKILL mid-stream, then restart ----------------------------------------------------
class SinkProcesses:
    """``python -m sinks.service`` children configured through the environment, as deployed."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    @property
    def group(self) -> str:
        return self.env["LIQWATCH_SINK_GROUP_ID"]

    def start(self, name: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sinks.service"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@pytest.fixture
def sink_processes(
    kafka_bootstrap: str,
    topics: Topics,
    clickhouse_server: ClickHouseServer,
    ch_database: str,
    tmp_path: Path,
) -> Iterator[SinkProcesses]:
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
            "LIQWATCH_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "LIQWATCH_KAFKA_TOPIC_PREFIX": topics.prefix,
            "LIQWATCH_CLICKHOUSE_URL": clickhouse_server.url,
            "LIQWATCH_CLICKHOUSE_DATABASE": ch_database,
            "LIQWATCH_SINK_GROUP_ID": f"killed-{ch_database}",
            "LIQWATCH_SINK_BATCH_MAX_ROWS": "5000",
            "LIQWATCH_SINK_BUFFER_MAX_ROWS": "10000",
            "LIQWATCH_SINK_SESSION_TIMEOUT_MS": "6000",
            "LIQWATCH_SINK_METRICS_PORT": "0",
            "LIQWATCH_METRICS_HOST": "127.0.0.1",
            "LIQWATCH_LOG_LEVEL": "INFO",
        }
    )
    processes = SinkProcesses(env, tmp_path)
    yield processes
    processes.stop_all()


def test_sigkill_mid_stream_then_restart_loses_and_doubles_nothing(
    kafka_bootstrap: str,
    topics: Topics,
    clickhouse_server: ClickHouseServer,
    ch_database: str,
    sink_processes: SinkProcesses,
) -> None:
    events = f.random_liquidations(120_000, seed=41)
    produce(kafka_bootstrap, topics.liquidations, f.envelopes(events, 100))
    first = sink_processes.start("first")
    wait_until(lambda: stored(clickhouse_server, ch_database) >= 40_000, 60, "first sink progress")
    first.send_signal(signal.SIGKILL)  # our own child, by its pid
    assert first.wait(10) == -signal.SIGKILL
    at_kill = stored(clickhouse_server, ch_database)
    assert 0 < at_kill < len(events), "the kill must land mid-stream"

    second = sink_processes.start("second")
    wait_until(lambda: stored(clickhouse_server, ch_database) == len(events), 60, "catch-up")
    group = sink_processes.group
    wait_until(
        lambda: all_committed(kafka_bootstrap, group, topics.liquidations, PARTITIONS), 30, "commit"
    )
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0, sink_processes.log("second")[-3000:]
    assert "Traceback" not in sink_processes.log("second"), sink_processes.log("second")[-3000:]
    assert_exactly_once(clickhouse_server, ch_database, events)
