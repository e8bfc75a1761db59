"""Binance open interest by REST: polled per symbol, within rate limits, parsed like frames."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from liqwatch.schema import OpenInterest, Venue
from producers.live.rest_poll import OpenInterestPoller, RateLimiter
from producers.metrics import ProducerMetrics
from producers.parsing import FrameParser
from tests.producers.fake_http import FakeHttp, Response

PATH = "/fapi/v1/openInterest"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_spaces_requests_and_honours_pauses() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, clock=clock)
    assert [limiter.delay() for _ in range(60)] == [0.0] * 60  # a full bucket: one burst
    assert limiter.delay() == pytest.approx(1.0)  # then one per second
    clock.now += 1.0
    assert limiter.delay() == 0.0
    limiter.pause_for(30)
    clock.now += 10
    assert limiter.delay() == pytest.approx(20.0)


class OpenInterestRoute:
    """Answers like Binance; the first request is rate limited with Retry-After."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, path: str) -> Response:
        self.times.append(time.monotonic())
        if len(self.times) == 1:
            return 429, b'{"code":-1003,"msg":"Too many requests"}', {"Retry-After": "0.3"}
        symbol = path.split("symbol=", 1)[1]
        if symbol == "NOPEUSDT":
            return 400, b'{"code":-1121,"msg":"Invalid symbol."}', {}
        body = {
            "openInterest": "81234.512",
            "symbol": symbol,
            "time": 1760130312011 + len(self.times),
        }
        return 200, json.dumps(body).encode(), {"X-MBX-USED-WEIGHT-1M": "12"}


@pytest.fixture
def route() -> Iterator[tuple[OpenInterestRoute, FakeHttp]]:
    answer = OpenInterestRoute()
    server = FakeHttp({PATH: answer}).start()
    yield answer, server
    server.stop()


async def test_polls_back_off_when_rate_limited_and_forward_answers(
    route: tuple[OpenInterestRoute, FakeHttp],
) -> None:
    answer, server = route
    registry = CollectorRegistry()
    frames: list[tuple[str, bytes]] = []
    poller = OpenInterestPoller(
        Venue.BINANCE,
        server.url + PATH,
        ["BTCUSDT", "NOPEUSDT", "ETHUSDT"],
        lambda venue, channel, ts, frame: frames.append((channel, frame)),
        channel=PATH,
        interval_s=0.2,
        limiter=RateLimiter(per_minute=6000),
        metrics=ProducerMetrics(registry),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    async with asyncio.timeout(10):
        while len(answer.times) < 7:
            await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert answer.times[1] - answer.times[0] >= 0.3  # waited out Retry-After
    assert all(channel == PATH for channel, _ in frames)
    assert b"Too many requests" not in b"".join(frame for _, frame in frames)
    status = {"venue": "binance", "status": "429"}
    assert registry.get_sample_value("liqwatch_producer_rest_requests_total", status) == 1
    status["status"] = "200"
    assert (registry.get_sample_value("liqwatch_producer_rest_requests_total", status) or 0) >= 4

    parser = FrameParser()
    parser.parse(Venue.BINANCE, "btcusdt@markPrice@1s", _mark("BTCUSDT"), 1)
    results = [parser.parse(Venue.BINANCE, channel, frame, 2) for channel, frame in frames]
    events = [e for r in results for e in r.events if isinstance(e, OpenInterest)]
    assert events and events[0].oi_base == pytest.approx(81234.512)
    reasons = [r.dead_letter.reason for r in results if r.dead_letter is not None]
    assert reasons and all(r.startswith("venue_error: -1121") for r in reasons)  # visible, not lost


def test_high_used_weight_pauses_until_the_next_minute() -> None:
    limiter = RateLimiter(per_minute=600)
    poller = OpenInterestPoller(
        Venue.BINANCE,
        "http://127.0.0.1:9/x",
        ["BTCUSDT"],
        lambda *a: None,
        channel=PATH,
        interval_s=1,
        limiter=limiter,
        weight_limit=100,
    )
    poller._respect_limits(200, {"x-mbx-used-weight-1m": "50"})
    assert limiter.delay() == 0.0
    poller._respect_limits(200, {"x-mbx-used-weight-1m": "95"})
    assert 0 < limiter.delay() <= 60


def _mark(symbol: str) -> bytes:
    return json.dumps(
        {
            "e": "markPriceUpdate",
            "E": 1760130312000,
            "s": symbol,
            "p": "112380.5",
            "i": "112371.2",
            "P": "112360.1",
            "r": "0.0001",
            "T": 1760140800000,
        }
    ).encode()
