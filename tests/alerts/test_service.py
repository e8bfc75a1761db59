"""The alerter service on a real Kafka broker: alerts in, email + Delivery + outcome out."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from alerts.service import Alerter, AlerterSettings
from alerts.samples import sample_snapshots
from liqwatch import codec
from liqwatch.schema import (
    AlertUpdate,
    DeadLetter,
    Delivery,
    DeliveryStatus,
    Envelope,
    EventKind,
    MarkPrice,
    Venue,
)
from liqwatch.settings import KafkaSettings, NotifySettings, ObservabilitySettings
from pydantic import SecretStr
from tests.alerts.factories import make_alert
from tests.plugins.smtp import SmtpServer

NAMES = ["alerts", "signals", "mark_price", "deliveries", "dlq"]
RULES = "routes:\n  - name: desk\n    notify: {urls: all}\n    outcomes: true\n"


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _read(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{time.time_ns()}",
                         "auto.offset.reset": "earliest"})
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


@pytest.fixture
def running(
    kafka_bootstrap: str, kafka_topics: Any, smtp_server: SmtpServer, tmp_path: Path
) -> Iterator[tuple[Alerter, str]]:
    topics = kafka_topics(NAMES)
    prefix = topics[0].rsplit(".", 1)[0] + "."
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = AlerterSettings(
        group_id=f"alerter-{prefix}",
        state_dir=tmp_path / "state",
        outcome_horizons_min=[1],
        poll_timeout_s=0.1,
        backoff_base_s=0.1,
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix),
        notify=NotifySettings(
            notify_urls=[SecretStr(smtp_server.url("desk", "svc-pa55"))], rules_file=rules
        ),
        observability=ObservabilitySettings(metrics_host="127.0.0.1", metrics_port=0),
    )
    stop = threading.Event()
    alerter = Alerter(settings, stop)
    thread = threading.Thread(target=lambda: asyncio.run(alerter.run()), daemon=True)
    thread.start()
    try:
        yield alerter, prefix
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "alerter did not stop"


def _marks(alert_ts: int, prices: list[tuple[int, float]]) -> bytes:
    events = [
        MarkPrice(venue=Venue.BYBIT, symbol="BTCUSDT", instrument="BTC-USDT-PERP", asset="BTC",
                  mark_price=price, ts_event=alert_ts + offset, ts_recv=alert_ts + offset,
                  event_id=f"m{offset}")
        for offset, price in prices
    ]
    envelope = Envelope(kind=EventKind.MARK_PRICE, asset="BTC", producer="test", seq=1,
                        ts_flush=alert_ts, events=events)
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
        alert.alert_id, DeliveryStatus.SENT, "desk",
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
        m for m in (codec.alert_decoder.decode(r) for r in raws if r != b"{not json")
        if isinstance(m, AlertUpdate)
    ]
    assert (outcome.subkind, outcome.seq, outcome.alert_id) == ("outcome", 1001, alert.alert_id)
    assert outcome.details["hit"] == 1.0 and outcome.details["price_after"] == 62_677.0
    assert outcome.details["max_favourable_pct"] == pytest.approx(1.0, abs=0.01)
    follow_up = smtp_server.wait_for(2, timeout=30)[1]
    assert "outcome after 1 min: hit" in follow_up.get_body(("html", "plain")).get_content()

    # Kafka redelivers the same alert: no second email
    producer.produce(f"{prefix}alerts", key="BTC", value=codec.encode(alert))
    producer.flush(10)
    _wait(lambda: (alerter.registry.get_sample_value("liqwatch_alerter_replays_skipped_total")
                   or 0) >= 1, 30, "the replay to be skipped")
    assert len(smtp_server.messages) == 2

    assert alerter.health is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{alerter.health.port}/readyz") as response:
        assert response.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{alerter.health.port}/metrics") as response:
        metrics = response.read().decode()
    assert 'liqwatch_alerter_deliveries_total{channel="email",status="sent"} 2.0' in metrics
    assert 'liqwatch_alerter_outcomes_total{hit="true",horizon_min="1"} 1.0' in metrics
    producer.close()
