"""The live runner: every selected venue's connections and polls, frames to one callback.

``run_live`` feeds ``on_frame(venue, channel, ts_recv, frame_bytes)`` until ``stop`` is set,
so the same stream can be parsed and published (``liqwatch produce``) or written to a
recording (``record``, behind ``liqwatch record``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from liqwatch.schema import Venue
from producers.instrument_refresh import InstrumentCache, InstrumentRefresher
from producers.instruments import Instrument, InstrumentBook
from producers.live.connection import OnFrame, VenueConnection
from producers.live.protocol import VenueProtocol
from producers.live.rest_poll import OpenInterestPoller, RateLimiter
from producers.live.settings import LiveSettings
from producers.live.symbols import SymbolSelection, select_instruments
from producers.metrics import ProducerMetrics
from producers.registry import PROTOCOLS
from producers.replay import recording_line

log = logging.getLogger(__name__)

Runner = Callable[[asyncio.Event], Awaitable[None]]


def _refresher(
    book: InstrumentBook, settings: LiveSettings, metrics: ProducerMetrics | None
) -> InstrumentRefresher:
    cache = InstrumentCache(settings.instruments_cache) if settings.instruments_cache else None
    urls = {Venue(v): url for v, url in settings.rest_urls.items()}
    return InstrumentRefresher(book, cache, rest_urls=urls, metrics=metrics)


def _venue_runners(
    protocol: VenueProtocol,
    book: InstrumentBook,
    symbols: SymbolSelection,
    on_frame: OnFrame,
    *,
    settings: LiveSettings,
    metrics: ProducerMetrics | None,
) -> list[Runner]:
    """What streams one venue (connections, polls); [] if nothing is selected."""
    instruments, everything = select_instruments(book, protocol.venue, symbols)
    if not instruments:
        log.warning("%s: no instrument matches %s", protocol.venue, symbols)
        return []
    base = settings.ws_url(protocol)
    endpoints = protocol.endpoints(instruments, base, everything, settings.heartbeat_s(protocol))
    policy = settings.policy(protocol)
    runners: list[Runner] = [
        VenueConnection(protocol, endpoint, on_frame, policy, metrics=metrics).run
        for endpoint in endpoints
    ]
    poller = _poller(protocol, instruments, on_frame, settings=settings, metrics=metrics)
    return runners if poller is None else [*runners, poller.run]


def _poller(
    protocol: VenueProtocol,
    instruments: list[Instrument],
    on_frame: OnFrame,
    *,
    settings: LiveSettings,
    metrics: ProducerMetrics | None,
) -> OpenInterestPoller | None:
    rest = settings.rest_url(protocol)
    if protocol.open_interest_path is None or rest is None or not settings.oi_poll_interval_s:
        return None
    return OpenInterestPoller(
        protocol.venue,
        rest.rstrip("/") + protocol.open_interest_path,
        [inst.symbol for inst in instruments],
        on_frame,
        channel=protocol.open_interest_path,
        interval_s=settings.oi_poll_interval_s,
        limiter=RateLimiter(settings.rest_requests_per_minute),
        timeout_s=settings.rest_timeout_s,
        metrics=metrics,
    )


async def _guarded(name: str, runner: Runner, stop: asyncio.Event) -> None:
    """Runs one task until stop; a bug is logged (never lost silently) and does not stop others."""
    try:
        await runner(stop)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s stopped by an unexpected error", name)


async def run_live(
    venues: Iterable[Venue | str],
    symbols: SymbolSelection,
    on_frame: OnFrame,
    stop: asyncio.Event,
    settings: LiveSettings | None = None,
    *,
    book: InstrumentBook | None = None,
    metrics: ProducerMetrics | None = None,
) -> None:
    """Streams ``venues`` until ``stop`` is set, then closes every connection."""
    chosen = [Venue(v) for v in venues]
    settings = settings or LiveSettings()
    book = book or InstrumentBook.default()
    refresher = _refresher(book, settings, metrics)
    if settings.refresh_instruments:
        await asyncio.to_thread(refresher.load, chosen)
    runners: list[tuple[str, Runner]] = []
    for venue in chosen:
        found = _venue_runners(
            PROTOCOLS[venue], book, symbols, on_frame, settings=settings, metrics=metrics
        )
        runners += [(venue.value, runner) for runner in found]
    if settings.refresh_instruments:
        interval = settings.instruments_refresh_s
        runners.append(("instruments", lambda s: refresher.run(chosen, interval, s)))
    tasks = [asyncio.create_task(_guarded(name, runner, stop)) for name, runner in runners]
    try:
        await stop.wait()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


async def record(
    venues: Iterable[Venue | str],
    symbols: SymbolSelection,
    out_path: Path | str,
    stop: asyncio.Event,
    settings: LiveSettings | None = None,
    *,
    book: InstrumentBook | None = None,
    metrics: ProducerMetrics | None = None,
) -> int:
    """Appends every received frame to ``out_path`` as a recording; returns frames written."""
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with path.open("ab") as out:

        def write(venue: Venue, channel: str, ts_recv: int, frame: bytes) -> None:
            nonlocal written
            out.write(recording_line(venue, channel, ts_recv, frame))
            written += 1

        await run_live(venues, symbols, write, stop, settings, book=book, metrics=metrics)
    return written
