"""Generic JSON webhook (Apprise json://) to a real local HTTP server."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator

import pytest

from alerts.render import WEBHOOK_SCHEMA
from alerts.samples import sample_updates
from liqwatch.schema import DeliveryStatus
from tests.alerts.conftest import MakeDispatcher
from tests.alerts.factories import make_alert
from tests.alerts.http_fakes import RecordingServer

PASSWORD = "hook-pa55-never-logged"


@pytest.fixture
def hook() -> Iterator[RecordingServer]:
    server = RecordingServer().start()
    yield server
    server.stop()


async def test_webhook_payload_is_the_alert_document(
    hook: RecordingServer, make_dispatcher: MakeDispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"json://bot:{PASSWORD}@127.0.0.1:{hook.port}/liq/alerts"
    harness = await make_dispatcher([url])
    alert = make_alert()
    harness.dispatcher.submit(alert, [])
    ended = sample_updates(alert)[1]
    harness.dispatcher.submit(ended)
    assert await harness.dispatcher.join(20)

    first, second = hook.wait_for(2)
    assert (first.method, first.route) == ("POST", "/liq/alerts")
    assert first.headers["Content-Type"].startswith("application/json")
    expected_auth = base64.b64encode(f"bot:{PASSWORD}".encode()).decode()
    assert first.headers["Authorization"] == f"Basic {expected_auth}"
    payload = first.json()
    assert payload["title"].endswith("Long liquidation cascade started")
    assert payload["type"] == "failure"  # longs liquidated: the red notification type
    assert payload["attachments"] == []  # no PNG for webhooks
    document = json.loads(payload["message"])
    assert document["schema"] == WEBHOOK_SCHEMA
    assert document["alert"]["alert_id"] == alert.alert_id
    assert document["alert"]["band_lo"] == 63_020.0 and document["alert"]["side"] == "long"
    follow_up = json.loads(second.json()["message"])
    assert follow_up["type"] == "alert_update"
    assert follow_up["update"]["status"] == "ended" and follow_up["update"]["seq"] == 2

    assert [(r.update_seq, r.status) for r in harness.records] == [
        (0, DeliveryStatus.SENT),
        (2, DeliveryStatus.SENT),
    ]
    assert {r.target for r in harness.records} == {f"json://127.0.0.1:{hook.port}"}
    assert PASSWORD not in caplog.text


async def test_unreachable_endpoint_is_retried_then_recorded_failed(
    make_dispatcher: MakeDispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    closed = RecordingServer()
    port = closed.port
    closed.stop()  # bound once, now closed: connection refused
    harness = await make_dispatcher([f"json://bot:{PASSWORD}@127.0.0.1:{port}/hook"])
    harness.dispatcher.submit(make_alert())
    assert await harness.dispatcher.join(20)
    (record,) = harness.records
    assert record.status is DeliveryStatus.FAILED
    assert record.attempts == 3 and record.error.startswith("apprise failure")
    assert PASSWORD not in record.error and PASSWORD not in caplog.text
    assert harness.metric("liqwatch_alerter_retries_total") == 2
    assert (
        harness.metric("liqwatch_alerter_deliveries_total", status="failed", channel="webhook") == 1
    )


async def test_server_error_responses_are_retried_until_accepted(
    make_dispatcher: MakeDispatcher,
) -> None:
    calls = {"n": 0}

    def flaky(_request: object) -> tuple[int, dict[str, str], bytes]:
        calls["n"] += 1
        return (503, {}, b"busy") if calls["n"] == 1 else (200, {}, b"{}")

    server = RecordingServer(responder=flaky).start()
    try:
        harness = await make_dispatcher([f"json://127.0.0.1:{server.port}/hook"])
        harness.dispatcher.submit(make_alert())
        assert await harness.dispatcher.join(20)
    finally:
        server.stop()
    (record,) = harness.records
    assert (record.status, record.attempts) == (DeliveryStatus.SENT, 2)
    assert len(server.requests) == 2


async def test_a_failed_delivery_is_retried_by_a_replay(make_dispatcher: MakeDispatcher) -> None:
    calls = {"n": 0}

    def down_then_up(_request: object) -> tuple[int, dict[str, str], bytes]:
        calls["n"] += 1
        return (500, {}, b"down") if calls["n"] <= 3 else (200, {}, b"{}")

    server = RecordingServer(responder=down_then_up).start()
    try:
        harness = await make_dispatcher([f"json://127.0.0.1:{server.port}/hook"])
        alert = make_alert()
        harness.dispatcher.submit(alert)
        assert await harness.dispatcher.join(20)
        harness.dispatcher.submit(alert)  # Kafka redelivers after the failure
        assert await harness.dispatcher.join(20)
        harness.dispatcher.submit(alert)  # and once more: now it is a replay
        assert await harness.dispatcher.join(20)
    finally:
        server.stop()
    assert [(r.status, r.attempts) for r in harness.records] == [
        (DeliveryStatus.FAILED, 3),
        (DeliveryStatus.SENT, 1),
    ]
    assert len(server.requests) == 4
