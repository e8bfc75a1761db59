"""Dispatcher behaviour end to end on a real HTTP endpoint: suppression records, digests,
follow-up ordering, completion callbacks."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Iterator

import pytest

from alerts.delivery import NO_TARGETS, DeliveryConfig
from alerts.jobs import STOPPED
from alerts.router import FOLDED, QUIET
from alerts.samples import sample_updates
from alerts.sender import Attachment
from liqwatch.schema import DeliveryStatus, Severity
from tests.alerts.conftest import MakeDispatcher
from tests.alerts.factories import make_alert
from tests.alerts.http_fakes import Recorded, RecordingServer
from tests.plugins.smtp import SmtpServer


@pytest.fixture
def hook() -> Iterator[RecordingServer]:
    server = RecordingServer().start()
    yield server
    server.stop()


def _rules(port: int, extra: str = "") -> str:
    return (
        "routes:\n  - name: r\n    notify: {urls: all}\n    dedupe_window_s: 0\n" + extra
    ).replace("PORT", str(port))


async def test_quiet_hours_are_recorded_as_suppressed_and_not_repeated(
    hook: RecordingServer, make_dispatcher: MakeDispatcher
) -> None:
    rules = _rules(hook.port, "    quiet_hours: {start: '00:00', end: '23:59'}\n")
    harness = await make_dispatcher([f"json://127.0.0.1:{hook.port}/h"], rules)
    alert = make_alert(severity=Severity.WARNING)
    harness.dispatcher.submit(alert)
    harness.dispatcher.submit(alert)
    assert await harness.dispatcher.join(10)
    (record,) = harness.records
    assert (record.status, record.error, record.attempts) == (DeliveryStatus.SUPPRESSED, QUIET, 0)
    assert record.target == f"json://127.0.0.1:{hook.port}"
    assert hook.requests == []


async def test_a_route_without_targets_leaves_an_audit_record(
    make_dispatcher: MakeDispatcher,
) -> None:
    harness = await make_dispatcher([])
    harness.dispatcher.submit(make_alert())
    assert await harness.dispatcher.join(10)
    (record,) = harness.records
    assert (record.status, record.error, record.route) == (
        DeliveryStatus.SUPPRESSED,
        NO_TARGETS,
        "default",
    )


async def test_flood_excess_arrives_as_one_digest(
    hook: RecordingServer, make_dispatcher: MakeDispatcher
) -> None:
    rules = _rules(hook.port, "    flood: {max_alerts: 1, window_s: 1}\n")
    harness = await make_dispatcher([f"json://127.0.0.1:{hook.port}/h"], rules)
    t0 = make_alert().created_at
    for i, asset in enumerate(["BTC", "ETH", "SOL"]):
        harness.dispatcher.submit(make_alert(alert_id=f"f{i}", asset=asset, created_at=t0 + i))
    first, digest = await asyncio.to_thread(hook.wait_for, 2, 10.0)
    assert json.loads(first.json()["message"])["alert_id"] == "f0"
    document = json.loads(digest.json()["message"])
    assert document["type"] == "digest" and document["alert_ids"] == ["f1", "f2"]
    assert "2 more alerts" in digest.json()["title"]
    assert await harness.dispatcher.join(10)
    by_id = {r.alert_id: r for r in harness.records}
    assert by_id["f1"].status is DeliveryStatus.SUPPRESSED and by_id["f1"].error == FOLDED
    assert by_id[f"digest:r:{t0}"].status is DeliveryStatus.SENT


async def test_follow_ups_wait_for_their_alert_on_each_target(
    make_dispatcher: MakeDispatcher,
) -> None:
    def slow_first(request: Recorded) -> tuple[int, dict[str, str], bytes]:
        if json.loads(request.json()["message"])["type"] == "alert":
            time.sleep(0.5)
        return 200, {}, b"{}"

    server = RecordingServer(responder=slow_first).start()
    try:
        harness = await make_dispatcher([f"json://127.0.0.1:{server.port}/h"])
        alert = make_alert()
        escalated, ended = sample_updates(alert)
        done: list[str] = []
        harness.dispatcher.submit(alert, on_done=lambda: done.append("alert"))
        harness.dispatcher.submit(escalated, on_done=lambda: done.append("escalated"))
        harness.dispatcher.submit(ended, on_done=lambda: done.append("ended"))
        assert await harness.dispatcher.join(10)
    finally:
        server.stop()
    kinds = [json.loads(r.json()["message"]) for r in server.requests]
    assert [k["type"] for k in kinds] == ["alert", "alert_update", "alert_update"]
    assert [k["update"]["seq"] for k in kinds[1:]] == [1, 2]
    assert sorted(done) == ["alert", "ended", "escalated"]
    assert len(harness.with_status(DeliveryStatus.SENT)) == 3


async def test_a_failing_png_renderer_does_not_stop_the_alert(
    smtp_server: SmtpServer, make_dispatcher: MakeDispatcher
) -> None:
    def broken() -> list[Attachment]:
        raise RuntimeError("no heatmap")

    harness = await make_dispatcher([smtp_server.url("desk", "pw-render")])
    harness.dispatcher.submit(make_alert(), broken)
    assert await harness.dispatcher.join(20)
    (message,) = smtp_server.wait_for(1)
    assert "image/png" not in {p.get_content_type() for p in message.walk()}
    assert harness.records[0].status is DeliveryStatus.SENT


async def test_stop_records_unfinished_work_and_never_reports_it_done(
    make_dispatcher: MakeDispatcher,
) -> None:
    def slow(_request: Recorded) -> tuple[int, dict[str, str], bytes]:
        time.sleep(2.0)
        return 200, {}, b"{}"

    server = RecordingServer(responder=slow).start()
    try:
        config = DeliveryConfig(max_in_flight=1, per_target=1)
        harness = await make_dispatcher([f"json://127.0.0.1:{server.port}/h"], config=config)
        done: list[str] = []
        for i in range(3):
            alert = make_alert(alert_id=f"s{i}", asset=f"A{i}")
            harness.dispatcher.submit(alert, on_done=functools.partial(done.append, f"s{i}"))
        await asyncio.sleep(0.3)  # s0 is being sent, s1 waits for a slot, s2 is queued
        await harness.dispatcher.stop(drain_timeout_s=0.2)
    finally:
        server.stop()
    assert done == []  # a Kafka consumer will read them again
    assert sorted((r.alert_id, r.status, r.error) for r in harness.records) == [
        ("s0", DeliveryStatus.FAILED, STOPPED),
        ("s1", DeliveryStatus.FAILED, STOPPED),
        ("s2", DeliveryStatus.FAILED, STOPPED),
    ]
