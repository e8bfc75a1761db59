"""Sending never blocks detection: a bounded queue, and a 30 s SMTP outage survived."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from alerts.delivery import DeliveryConfig
from alerts.heatmap_png import render_heatmap_png
from alerts.samples import sample_snapshots
from alerts.sender import Attachment, RetryPolicy
from liqwatch.schema import DeliveryStatus
from tests.alerts.conftest import MakeDispatcher
from tests.alerts.factories import make_alert
from tests.alerts.http_fakes import Recorded, RecordingServer
from tests.plugins.smtp import SmtpServer

OUTAGE_S = 30.0


@pytest.fixture
def slow_hook() -> Iterator[RecordingServer]:
    def slow(_request: Recorded) -> tuple[int, dict[str, str], bytes]:
        time.sleep(1.0)
        return 200, {}, b"{}"

    server = RecordingServer(responder=slow).start()
    yield server
    server.stop()


async def test_a_full_queue_refuses_at_once_and_records_the_refusal(
    slow_hook: RecordingServer, make_dispatcher: MakeDispatcher
) -> None:
    config = DeliveryConfig(queue_size=2, max_in_flight=1, per_target=1)
    harness = await make_dispatcher([f"json://127.0.0.1:{slow_hook.port}/h"], config=config)
    alerts = [make_alert(alert_id=f"q{i}", asset=f"A{i}") for i in range(10)]

    started = time.perf_counter()
    accepted = [harness.dispatcher.submit(a) for a in alerts]
    elapsed = time.perf_counter() - started

    assert accepted == [True, True] + [False] * 8
    assert elapsed < 0.5  # the target takes 1 s per request; submit never waits for it
    refused = harness.with_status(DeliveryStatus.FAILED)
    assert [r.alert_id for r in refused] == [f"q{i}" for i in range(2, 10)]
    assert all(r.error == "delivery queue full (2)" and r.target == "*" for r in refused)
    assert harness.metric("liqwatch_alerter_queue_full_total") == 8
    assert await harness.dispatcher.join(20)
    sent = harness.with_status(DeliveryStatus.SENT)
    assert sorted(r.alert_id for r in sent) == ["q0", "q1"]


async def test_a_replay_after_a_refusal_is_delivered(
    slow_hook: RecordingServer, make_dispatcher: MakeDispatcher
) -> None:
    config = DeliveryConfig(queue_size=1, max_in_flight=1, per_target=1)
    harness = await make_dispatcher([f"json://127.0.0.1:{slow_hook.port}/h"], config=config)
    first, second = make_alert(alert_id="r0", asset="A"), make_alert(alert_id="r1", asset="B")
    assert harness.dispatcher.submit(first)
    assert not harness.dispatcher.submit(second)
    assert await harness.dispatcher.join(20)
    assert harness.dispatcher.submit(second)  # e.g. redelivered by Kafka
    assert await harness.dispatcher.join(20)
    assert sorted(r.alert_id for r in harness.with_status(DeliveryStatus.SENT)) == ["r0", "r1"]


@dataclass
class LoopStats:
    events: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0  # CPU time of the loop's own thread
    max_stall_s: float = 0.0  # longest time between two turns of the loop
    windows: list[float] = field(default_factory=list)  # events/s per 1 s window

    @property
    def per_cpu_s(self) -> float:
        return self.events / self.cpu_s

    @property
    def median_wall(self) -> float:
        return statistics.median(self.windows)


async def _detection_loop(seconds: float) -> LoopStats:
    """A CPU-bound stand-in for the detection engine sharing the event loop with delivery."""
    rng = np.random.default_rng(1)
    prices = rng.normal(64_000, 300, 500)  # one envelope's worth of events
    sizes = rng.exponential(5_000, 500)
    grid = np.zeros(2_000)
    stats = LoopStats()
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    end = wall0 + seconds
    while (window_start := time.perf_counter()) < end:
        events, last = 0, window_start
        while (now := time.perf_counter()) - window_start < 1.0:
            stats.max_stall_s = max(stats.max_stall_s, now - last)
            index = np.clip(((prices - 60_000) / 5).astype(int), 0, grid.size - 1)
            np.add.at(grid, index, sizes)
            grid *= 0.999
            events += prices.size
            last = time.perf_counter()
            await asyncio.sleep(0)  # like the embedded runner between envelopes
        stats.windows.append(events / (time.perf_counter() - window_start))
        stats.events += events
    stats.cpu_s, stats.wall_s = time.thread_time() - cpu0, time.perf_counter() - wall0
    return stats


@pytest.mark.slow
async def test_smtp_down_for_30_s_is_retried_and_detection_keeps_its_pace(
    smtp_server: SmtpServer, make_dispatcher: MakeDispatcher
) -> None:
    retry = RetryPolicy(timeout_s=10.0, max_attempts=30, backoff_base_s=1.0, backoff_max_s=4.0)
    harness = await make_dispatcher(
        [smtp_server.url("trader", "outage-pw")], config=DeliveryConfig(retry=retry)
    )
    alert = make_alert()
    png = render_heatmap_png(sample_snapshots(30), alert)

    await _detection_loop(1.0)  # warm-up
    before = await _detection_loop(6.0)
    smtp_server.stop()
    outage_started = time.monotonic()
    assert harness.dispatcher.submit(alert, lambda: [Attachment("btc-heatmap.png", png)])
    during = await _detection_loop(OUTAGE_S)
    assert smtp_server.messages == []  # nothing could have been delivered
    smtp_server.start()  # same port
    (message,) = await asyncio.to_thread(smtp_server.wait_for, 1, 30.0)
    recovered_after = time.monotonic() - outage_started
    assert await harness.dispatcher.join(10)
    after = await _detection_loop(6.0)  # idle again: the second half of the baseline

    (record,) = harness.records
    assert record.status is DeliveryStatus.SENT
    assert record.attempts >= 4, record  # retried through the outage
    assert message["Subject"].endswith("Long liquidation cascade started")
    assert any(p.get_content_type() == "image/png" for p in message.walk())

    base_cpu = (before.events + after.events) / (before.cpu_s + after.cpu_s)
    base_wall = statistics.median(before.windows + after.windows)
    base_stall = max(before.max_stall_s, after.max_stall_s)
    print(
        f"\ndetection stand-in, baseline → during a {OUTAGE_S:.0f} s SMTP outage: "
        f"{base_cpu:,.0f} → {during.per_cpu_s:,.0f} events per CPU-second "
        f"({during.per_cpu_s / base_cpu:.1%}); median wall rate {base_wall:,.0f} → "
        f"{during.median_wall:,.0f} events/s ({during.median_wall / base_wall:.1%}); "
        f"longest stall {base_stall * 1000:.0f} → {during.max_stall_s * 1000:.0f} ms; "
        f"delivered {recovered_after:.1f} s after the outage began in {record.attempts} attempts"
    )
    # Work taken out of the detection loop shows in its CPU-normalised rate, which other
    # processes on this shared 2-core machine do not disturb (its wall rate swings 3x here).
    assert during.per_cpu_s >= 0.8 * base_cpu
    # Blocking the loop (a sync send, a throttle sleep) shows as a stall and a wall-rate drop.
    assert during.max_stall_s < 0.5
    assert during.median_wall >= 0.5 * base_wall
