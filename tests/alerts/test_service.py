"""The alerter service on a real Kafka broker: alerts in, email + Delivery + outcome out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from pydantic import SecretStr

from alerts.samples import sample_snapshots
from alerts.service import Alerter, AlerterSettings
from liqwatch import codec
from liqwatch.schema import (
    AlertUpdate,
    DeadLetter,
    Delivery,
    DeliveryStatus,
    Envelope,
    EventKind,
    MarketEvent,
    MarkPrice,
    Venue,
)
from liqwatch.settings import KafkaSettings, NotifySettings, ObservabilitySettings
from tests.alerts.factories import make_alert
from tests.alerts.http_fakes import Recorded, RecordingServer
from tests.plugins.smtp import SmtpServer

NAMES = ["alerts", "signals", "mark_price", "deliveries", "dlq"]
RULES = "routes:\n  - name: desk\n    notify: {urls: all}\n    outcomes: true\n"


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _read(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{time.time_ns()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    found: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                found.append(message.value() or b"")
    finally:
        consumer.close()
    return found


def _settings(
    bootstrap: str, prefix: str, state: Path, urls: list[str], rules: Path | None, **extra: Any
) -> AlerterSettings:
    return AlerterSettings(
        group_id=f"alerter-{prefix}",
        state_dir=state,
        poll_timeout_s=0.1,
        backoff_base_s=0.1,
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix),
        notify=NotifySettings(notify_urls=[SecretStr(u) for u in urls], rules_file=rules),
        observability=ObservabilitySettings(metrics_host="127.0.0.1", metrics_port=0),
        **extra,
    )


@contextlib.contextmanager
def _alerter(settings: AlerterSettings) -> Iterator[Alerter]:
    stop = threading.Event()
    alerter = Alerter(settings, stop)
    thread = threading.Thread(target=lambda: asyncio.run(alerter.run()), daemon=True)
    thread.start()
    try:
        yield alerter
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "alerter did not stop"


@pytest.fixture
def running(
    kafka_bootstrap: str, kafka_topics: Any, smtp_server: SmtpServer, tmp_path: Path
) -> Iterator[tuple[Alerter, str]]:
    prefix = kafka_topics(NAMES)[0].rsplit(".", 1)[0] + "."
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    urls = [smtp_server.url("desk", "svc-pa55")]
    settings = _settings(
        kafka_bootstrap, prefix, tmp_path / "state", urls, rules, outcome_horizons_min=[1]
    )
    with _alerter(settings) as alerter:
        yield alerter, prefix


def _marks(alert_ts: int, prices: list[tuple[int, float]]) -> bytes:
    events: list[MarketEvent] = [
        MarkPrice(
            venue=Venue.BYBIT,
            symbol="BTCUSDT",
            instrument="BTC-USDT-PERP",
            asset="BTC",
            mark_price=price,
            ts_event=alert_ts + offset,
            ts_recv=alert_ts + offset,
            event_id=f"m{offset}",
        )
        for offset, price in prices
    ]
    envelope = Envelope(
        kind=EventKind.MARK_PRICE,
        asset="BTC",
        producer="test",
        seq=1,
        ts_flush=alert_ts,
        events=events,
    )
    return codec.encode(envelope)


@pytest.mark.servers
def test_alert_to_email_delivery_record_and_outcome(
    running: tuple[Alerter, str], kafka_bootstrap: str, smtp_server: SmtpServer
) -> None:
    alerter, prefix = running
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    alert = make_alert()
    for snap in sample_snapshots(20, start=alert.created_at - 20 * 30_000):
        producer.produce(f"{prefix}signals", key="BTC", value=codec.encode(snap))
    producer.flush(10)
    _wait(lambda: len(alerter.heatmaps.get("BTC", ())) == 20, 30, "heatmap snapshots")

    producer.produce(f"{prefix}alerts", key="BTC", value=codec.encode(alert))
    producer.produce(f"{prefix}alerts", key="BTC", value=b"{not json")
    producer.flush(10)
    (message,) = smtp_server.wait_for(1, timeout=30)
    assert message["Subject"].endswith("Long liquidation cascade started")
    assert "image/png" in {p.get_content_type() for p in message.walk()}

    (delivery_raw,) = _read(kafka_bootstrap, f"{prefix}deliveries", 1)
    delivery = codec.delivery_decoder.decode(delivery_raw)
    assert isinstance(delivery, Delivery)
    assert (delivery.alert_id, delivery.status, delivery.route) == (
        alert.alert_id,
        DeliveryStatus.SENT,
        "desk",
    )
    assert delivery.target == f"mailto://127.0.0.1:{smtp_server.port}"
    (dead_raw,) = _read(kafka_bootstrap, f"{prefix}dlq", 1)
    dead = codec.dead_letter_decoder.decode(dead_raw)
    assert isinstance(dead, DeadLetter) and dead.source == "alerter"
    assert dead.raw == "{not json" and "undecodable alert" in dead.reason

    # mark prices: down 1 % within the minute, so the "down" claim is a hit after 1 min
    marks = _marks(alert.created_at, [(10_000, 62_800.0), (30_000, 62_677.0), (61_000, 62_700.0)])
    producer.produce(f"{prefix}mark_price", key="BTC", value=marks)
    producer.flush(10)
    raws = _read(kafka_bootstrap, f"{prefix}alerts", 3)
    (outcome,) = [
        m
        for m in (codec.alert_decoder.decode(r) for r in raws if r != b"{not json")
        if isinstance(m, AlertUpdate)
    ]
    assert (outcome.subkind, outcome.seq, outcome.alert_id) == ("outcome", 1001, alert.alert_id)
    assert outcome.details["hit"] == 1.0 and outcome.details["price_after"] == 62_677.0
    assert outcome.details["max_favourable_pct"] == pytest.approx(1.0, abs=0.01)
    follow_up = smtp_server.wait_for(2, timeout=30)[1]
    body = follow_up.get_body(("html", "plain"))
    assert body is not None and "outcome after 1 min: hit" in body.get_content()

    # Kafka redelivers the same alert: no second email
    producer.produce(f"{prefix}alerts", key="BTC", value=codec.encode(alert))
    producer.flush(10)
    _wait(
        lambda: (
            (alerter.registry.get_sample_value("liqwatch_alerter_replays_skipped_total") or 0) >= 1
        ),
        30,
        "the replay to be skipped",
    )
    assert len(smtp_server.messages) == 2

    assert alerter.health is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{alerter.health.port}/readyz") as response:
        assert response.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{alerter.health.port}/metrics") as response:
        metrics = response.read().decode()
    assert 'liqwatch_alerter_deliveries_total{channel="email",status="sent"} 2.0' in metrics
    assert 'liqwatch_alerter_outcomes_total{hit="true",horizon_min="1"} 1.0' in metrics
    producer.close()


@pytest.mark.servers
def test_a_burst_waits_for_the_dispatcher_instead_of_overflowing(
    kafka_bootstrap: str, kafka_topics: Any, tmp_path: Path
) -> None:
    def slow(_request: Recorded) -> tuple[int, dict[str, str], bytes]:
        time.sleep(0.2)
        return 200, {}, b"{}"

    hook = RecordingServer(responder=slow).start()
    prefix = kafka_topics(NAMES)[0].rsplit(".", 1)[0] + "."
    settings = _settings(
        kafka_bootstrap,
        prefix,
        tmp_path / "state",
        [f"json://127.0.0.1:{hook.port}/h"],
        None,
        queue_size=2,
        poll_batch=2,
        max_in_flight=1,
        per_target=1,
        attach_png=False,
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    try:
        with _alerter(settings) as alerter:
            for i in range(12):
                alert = make_alert(alert_id=f"burst{i}", asset=f"A{i}")
                producer.produce(f"{prefix}alerts", key=alert.asset, value=codec.encode(alert))
            producer.flush(10)
            hook.wait_for(12, timeout=60)
            full = alerter.registry.get_sample_value("liqwatch_alerter_queue_full_total")
    finally:
        producer.close()
        hook.stop()
    assert full == 0  # paused consumption instead of refusing
    ids = {json.loads(r.json()["message"])["alert_id"] for r in hook.requests}
    assert ids == {f"burst{i}" for i in range(12)}


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIQWATCH_ALERTER_OUTCOME_HORIZONS_MIN", "5, 30")
    monkeypatch.setenv("LIQWATCH_ALERTER_QUEUE_SIZE", "50")
    monkeypatch.setenv("LIQWATCH_KAFKA_TOPIC_PREFIX", "desk.")
    monkeypatch.setenv("LIQWATCH_NOTIFY_URLS", "json://a.example.com/x json://b.example.com/y")
    settings = AlerterSettings()
    assert settings.outcome_horizons_min == [5, 30]
    assert settings.delivery_config().queue_size == 50
    assert settings.kafka.topic_prefix == "desk."
    assert [u.get_secret_value() for u in settings.notify.all_urls()][1].endswith("/y")
    assert "example.com" not in repr(settings.notify)
    monkeypatch.setenv("LIQWATCH_ALERTER_QUEUE_SIZE", "0")
    with pytest.raises(ValueError, match="queue_size"):
        AlerterSettings()
