"""Open interest by REST poll (Binance has no OI stream), within the venue's rate limits.

Each symbol is polled every ``interval_s`` through a token bucket of ``per_minute`` requests.
A 429/418 answer pauses the poller for its ``Retry-After``; a used-weight header above 80 % of
the venue's limit pauses it until the next minute. Bodies go to ``on_frame`` with the request
path as the channel, so the parser (and a recording) sees them like any other frame.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence

from liqwatch.schema import Venue
from producers.live.connection import OnFrame, wait_or_stop
from producers.metrics import ProducerMetrics

log = logging.getLogger(__name__)

Response = tuple[int, bytes, Mapping[str, str]]
Get = Callable[[str, float], Response]
USED_WEIGHT_HEADER = "x-mbx-used-weight-1m"
RATE_LIMITED = (429, 418)


def http_get(url: str, timeout_s: float) -> Response:
    """(status, body, headers); HTTP errors are answers too, only network failures raise."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url, headers={"User-Agent": "liqwatch"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return response.status, response.read(), _lower(response.headers.items())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), _lower(exc.headers.items())


def _lower(items: Sequence[tuple[str, str]]) -> dict[str, str]:
    return {key.lower(): value for key, value in items}


class RateLimiter:
    """A token bucket of ``per_minute`` requests, plus pauses the venue asks for."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = max(1, per_minute)
        self.rate_s = self.capacity / 60.0
        self.tokens = float(self.capacity)
        self.clock = clock
        self.updated = clock()
        self.paused_until = 0.0

    def pause_for(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock() + seconds)

    def delay(self) -> float:
        """Seconds to wait before the next request (0 when one may go now, and takes a token)."""
        now = self.clock()
        if now < self.paused_until:
            return self.paused_until - now
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_s)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate_s

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Waits for a token; False if ``stop`` was set meanwhile."""
        while (wait := self.delay()) > 0:
            if await wait_or_stop(stop, wait):
                return False
        return not stop.is_set()


class OpenInterestPoller:
    def __init__(
        self,
        venue: Venue,
        url: str,
        symbols: Sequence[str],
        on_frame: OnFrame,
        *,
        channel: str,
        interval_s: float,
        limiter: RateLimiter,
        weight_limit: int = 2400,
        timeout_s: float = 10.0,
        metrics: ProducerMetrics | None = None,
        get: Get = http_get,
    ) -> None:
        self.venue = venue
        self.url = url  # base + path, e.g. https://fapi.binance.com/fapi/v1/openInterest
        self.symbols = list(symbols)
        self.on_frame = on_frame
        self.channel = channel
        self.interval_s = interval_s
        self.limiter = limiter
        self.weight_limit = weight_limit
        self.timeout_s = timeout_s
        self.metrics = metrics
        self.get = get
        self.polls = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            for symbol in self.symbols:
                if not await self.limiter.acquire(stop):
                    return
                await self.poll(symbol)
            await wait_or_stop(stop, max(0.0, self.interval_s - (time.monotonic() - started)))

    async def poll(self, symbol: str) -> None:
        url = f"{self.url}?symbol={symbol}"
        try:
            status, body, headers = await asyncio.to_thread(self.get, url, self.timeout_s)
        except Exception as exc:  # network: counted, logged, retried next cycle
            log.warning("%s open interest poll for %s failed: %s", self.venue, symbol, exc)
            self._count("error")
            return
        self.polls += 1
        self._count(str(status))
        self._respect_limits(status, headers)
        if status in RATE_LIMITED or status >= 500:
            return
        pending = self.on_frame(self.venue, self.channel, int(time.time() * 1000), body)
        if pending is not None:
            await pending

    def _respect_limits(self, status: int, headers: Mapping[str, str]) -> None:
        if status in RATE_LIMITED:
            retry_after = _seconds(headers.get("retry-after"), default=60.0)
            log.warning(
                "%s rate limited (%d): pausing polls for %.0f s", self.venue, status, retry_after
            )
            self.limiter.pause_for(retry_after)
            return
        used = _seconds(headers.get(USED_WEIGHT_HEADER), default=0.0)
        if used > 0.8 * self.weight_limit:
            self.limiter.pause_for(60.0 - time.time() % 60.0)

    def _count(self, status: str) -> None:
        if self.metrics is not None:
            self.metrics.rest_requests.labels(self.venue.value, status).inc()


def _seconds(text: str | None, default: float) -> float:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default
