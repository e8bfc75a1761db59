"""The distributed path on real servers: synthetic recording → `liqwatch produce` → Kafka →
Faust worker → signal/alert topics → ClickHouse rows (sink) and an email through Apprise's
mailto:// to a real SMTP server (alerter). Every service runs as its own process, as deployed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from liqwatch.schema import Liquidation
from producers.base import ParseContext
from producers.instruments import InstrumentBook
from producers.parsing import parse_frame
from producers.replay import iter_recording

pytestmark = [pytest.mark.servers, pytest.mark.slow]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "liqwatch.cli", *args]


def _run(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    result = subprocess.run(args, env=env, capture_output=True, timeout=timeout, check=False)
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-4000:])
    return result.stdout.decode()


def _liquidations_in(recording: Path) -> set[str]:
    from liqwatch import codec

    book = InstrumentBook.default()
    contexts: dict[str, ParseContext] = {}
    ids: set[str] = set()
    for item in iter_recording(recording):
        ctx = contexts.setdefault(item.venue, ParseContext(instruments=book))
        frame = item.frame.encode() if isinstance(item.frame, str) else codec.encode(item.frame)
        result = parse_frame(item.venue, item.channel, frame, item.ts_recv, ctx)
        ids.update(e.event_id for e in result.events if isinstance(e, Liquidation))
    return ids


def _wait(what: str, check: Callable[[], Any], timeout: float, logs: list[Path]) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"timed out waiting for {what} (last: {last!r})\n{tails}", pytrace=False)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Callable[[str, dict[str, str]], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as log:  # the child keeps its own handle
            proc = subprocess.Popen(_cli(name), env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_distributed_pipeline_end_to_end(
    kafka_bootstrap: str,
    clickhouse_server: Any,
    clickhouse_client: Any,
    ch_database: str,
    smtp_server: Any,
    services: Callable[[str, dict[str, str]], subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    run_id = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "LIQWATCH_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LIQWATCH_KAFKA_TOPIC_PREFIX": f"e2e{run_id}.",
        "LIQWATCH_KAFKA_PARTITIONS": "2",
        "LIQWATCH_CLICKHOUSE_URL": clickhouse_server.url,
        "LIQWATCH_CLICKHOUSE_DATABASE": ch_database,
        "LIQWATCH_METRICS_PORT": "0",
        "LIQWATCH_LOG_LEVEL": "INFO",
        "LIQWATCH_WORKER_APP_ID": f"e2e-worker-{run_id}",
        "LIQWATCH_WORKER_STATE_DIR": str(tmp_path / "worker"),
        "LIQWATCH_WORKER_SESSION_TIMEOUT_S": "6",
        "LIQWATCH_SINK_GROUP_ID": f"e2e-sink-{run_id}",
        "LIQWATCH_SINK_BATCH_MAX_MS": "300",
        "LIQWATCH_ALERTER_GROUP_ID": f"e2e-alerter-{run_id}",
        "LIQWATCH_ALERTER_STATE_DIR": str(tmp_path / "alerter"),
        "LIQWATCH_NOTIFY_URLS": smtp_server.url("trader", "s3cret-pass"),
        # the scenario lasts 25 simulated minutes: a 5-minute horizon gives outcomes within it
        "LIQWATCH_ALERTER_OUTCOME_HORIZONS_MIN": "5",
    }
    logs = [tmp_path / f"{n}.log" for n in ("worker", "sink", "alerter")]

    topics = _run(_cli("topics", "create"), env).split()
    assert f"e2e{run_id}.liquidations" in topics and f"e2e{run_id}.alerts" in topics
    _run(_cli("db", "migrate", "--clickhouse-url", clickhouse_server.url), env)

    recording = tmp_path / "demo.jsonl"
    _run(_cli("synth", "demo", "--out", str(recording)), env)
    expected = _liquidations_in(recording)
    assert len(expected) > 100

    for name in ("worker", "sink", "alerter"):
        services(name, env)
    produced = _run(_cli("produce", "--source", f"replay:{recording}"), env)
    assert "undelivered=0" in produced and "dead_letters=0" in produced

    db = ch_database

    def stored_liquidations() -> int:
        q = f"SELECT uniqExact(event_id) FROM {db}.liquidations"
        return int(clickhouse_client.query(q).result_rows[0][0]) == len(expected)

    _wait("every liquidation in ClickHouse", stored_liquidations, 120, logs)
    dupes = clickhouse_client.query(
        f"SELECT count() - uniqExact(event_id) FROM {db}.liquidations FINAL"
    ).result_rows[0][0]
    assert dupes == 0

    labelled = {("BTC", "long"), ("ETH", "short")}  # the demo's long cascade and short squeeze

    def cascade_alerts() -> set[tuple[str, str]]:
        q = f"SELECT asset, side FROM {db}.alerts FINAL WHERE kind = 'cascade'"
        found = {(str(a), str(s)) for a, s in clickhouse_client.query(q).result_rows}
        return found if found >= labelled else set()

    _wait("both labelled cascades as alerts in ClickHouse", cascade_alerts, 180, logs)

    messages = _wait(
        "a cascade email",
        lambda: [m for m in smtp_server.messages if "cascade" in str(m["Subject"]).lower()],
        120,
        logs,
    )
    email = messages[0]
    assert email.get_body(("html",)) is not None and email.get_body(("plain",)) is not None
    assert any(p.get_content_type() == "image/png" for p in email.iter_attachments())

    def sent_deliveries() -> int:
        q = f"SELECT count() FROM {db}.deliveries WHERE status = 'sent'"
        return int(clickhouse_client.query(q).result_rows[0][0])

    assert _wait("delivery records in ClickHouse", sent_deliveries, 60, logs) >= 1

    # the cascade's lifecycle reaches the trader as follow-ups of the first email
    headline = str(email["Subject"])
    follow_ups = _wait(
        "a cascade follow-up email",
        lambda: [
            m
            for m in smtp_server.messages
            if str(m["Subject"]).startswith("Re:") and "cascade" in str(m["Subject"]).lower()
        ],
        180,
        logs,
    )
    assert any(headline.split(":", 1)[-1].strip()[:20] in str(m["Subject"]) for m in follow_ups)

    def measured_outcomes() -> int:
        q = f"SELECT count() FROM {db}.alert_outcomes"
        return int(clickhouse_client.query(q).result_rows[0][0])

    _wait("alert outcomes in ClickHouse", measured_outcomes, 120, logs)
    review = _run(
        _cli("alerts", "review", "--hours", "0", "--clickhouse-url", clickhouse_server.url), env
    )
    assert "cascade" in review and ("hit" in review or "miss" in review)
    assert "Hit rate per kind" in review and "(no outcomes yet)" not in review
    for log in logs:
        assert "s3cret-pass" not in log.read_text()
