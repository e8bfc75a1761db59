"""Keeping the instrument book current: on-disk JSON cache, REST refresh, built-in fallback.

At start each venue's metadata comes from the cache if fresh, else from REST (and is cached),
else from a stale cache, else the built-in defaults stay. A background task refreshes from REST
every ``interval_s``; a failed refresh keeps what the book has. Fetches run in a worker thread;
the book is only updated from the caller's thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import msgspec

from liqwatch.schema import Venue
from producers.instrument_rest import DEFAULT_REST_URLS, Fetch, fetch_bytes, fetch_venue
from producers.instruments import Instrument, InstrumentBook
from producers.metrics import ProducerMetrics

log = logging.getLogger(__name__)

CACHE_VERSION = 1


class CacheEntry(msgspec.Struct):
    fetched_at: int  # ms
    instruments: list[Instrument]


class CacheFile(msgspec.Struct):
    version: int = CACHE_VERSION
    venues: dict[Venue, CacheEntry] = msgspec.field(default_factory=dict)


class InstrumentCache:
    """One JSON file for all venues, replaced atomically on write."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[Venue, CacheEntry]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            cache = msgspec.json.decode(data, type=CacheFile)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            log.warning("ignoring unreadable instrument cache %s: %s", self.path, exc)
            return {}
        return cache.venues if cache.version == CACHE_VERSION else {}

    def write(self, venue: Venue, instruments: list[Instrument], fetched_at: int) -> None:
        venues = self.read()
        venues[venue] = CacheEntry(fetched_at=fetched_at, instruments=instruments)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_bytes(msgspec.json.encode(CacheFile(venues=venues)))
        os.replace(tmp, self.path)


class InstrumentRefresher:
    def __init__(
        self,
        book: InstrumentBook,
        cache: InstrumentCache | None = None,
        *,
        rest_urls: Mapping[Venue, str] | None = None,
        fetch: Fetch = fetch_bytes,
        timeout_s: float = 10.0,
        max_age_s: float = 6 * 3600,
        metrics: ProducerMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = book
        self.cache = cache
        self.rest_urls = {**DEFAULT_REST_URLS, **(rest_urls or {})}
        self.fetch = fetch
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self.metrics = metrics
        self.clock = clock

    def _count(self, venue: Venue, result: str) -> None:
        if self.metrics is not None:
            self.metrics.instrument_refreshes.labels(venue.value, result).inc()

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _fetch(self, venue: Venue) -> list[Instrument]:
        return fetch_venue(venue, self.rest_urls[venue], self.fetch, self.timeout_s)

    def _store(self, venue: Venue, instruments: list[Instrument]) -> None:
        self.book.update(instruments)
        if self.cache is not None:
            self.cache.write(venue, instruments, self._now_ms())

    def load(self, venues: Iterable[Venue]) -> dict[Venue, str]:
        """Initial load (blocking). Returns where each venue's metadata came from."""
        cached = self.cache.read() if self.cache is not None else {}
        sources: dict[Venue, str] = {}
        for venue in venues:
            entry = cached.get(venue)
            age_s = (self._now_ms() - entry.fetched_at) / 1000 if entry else None
            if entry is not None and age_s is not None and age_s < self.max_age_s:
                self.book.update(entry.instruments)
                sources[venue] = "cache"
            else:
                sources[venue] = self._load_rest(venue, entry)
            self._count(venue, sources[venue])
        return sources

    def _load_rest(self, venue: Venue, entry: CacheEntry | None) -> str:
        try:
            self._store(venue, self._fetch(venue))
        except Exception as exc:  # network, HTTP or shape: fall back, never fail the start
            log.warning("instrument metadata for %s from REST failed: %s", venue.value, exc)
            if entry is not None:
                self.book.update(entry.instruments)
                return "stale_cache"
            return "default"
        return "rest"

    async def refresh(self, venues: Iterable[Venue]) -> dict[Venue, int]:
        """Refreshes from REST now; returns the instruments loaded per venue (-1 if failed)."""
        counts: dict[Venue, int] = {}
        for venue in venues:
            try:
                instruments = await asyncio.to_thread(self._fetch, venue)
            except Exception as exc:
                log.warning("instrument refresh for %s failed: %s", venue.value, exc)
                self._count(venue, "failed")
                counts[venue] = -1
                continue
            self._store(venue, instruments)
            self._count(venue, "rest")
            counts[venue] = len(instruments)
        return counts

    async def run(self, venues: Iterable[Venue], interval_s: float, stop: asyncio.Event) -> None:
        venues = list(venues)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                await self.refresh(venues)
