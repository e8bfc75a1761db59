"""Gathers events into per-(kind, asset) envelopes: one Kafka message carries many events.

Flush rules: a full envelope (``max_events``) goes at once; otherwise an envelope waits at most
``max_delay_ms`` after its first event; and when the source is idle the caller flushes everything
(``flush_all``), so a quiet market pays no delay while a cascade fills envelopes.

An envelope also never spans more than ``max_span_ms`` of event time. Live, that bound is never
the one that bites; in a fast replay, 50 ms of wall time can hold minutes of market time, and
the worker, which merges the three market topics by seal time, would then see a minute of
liquidations before the prices of that minute.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from liqwatch.schema import (
    Envelope,
    EventKind,
    Liquidation,
    MarketEvent,
    MarkPrice,
)


def kind_of(event: MarketEvent) -> EventKind:
    if isinstance(event, Liquidation):
        return EventKind.LIQUIDATION
    if isinstance(event, MarkPrice):
        return EventKind.MARK_PRICE
    return EventKind.OPEN_INTEREST


@dataclass
class _Pending:
    first_ms: int
    first_event_ms: int
    events: list[MarketEvent] = field(default_factory=list)


# what the producers ship: a held envelope is sealed on the next loop turn after MAX_DELAY_MS,
# which keeps the delay it adds to any event under 50 ms
MAX_EVENTS = 500
MAX_DELAY_MS = 40


class EnvelopeBatcher:
    def __init__(
        self,
        producer_id: str,
        max_events: int = MAX_EVENTS,
        max_delay_ms: int = MAX_DELAY_MS,
        max_span_ms: int = 250,
    ) -> None:
        self.producer_id = producer_id
        self.max_events = max_events
        self.max_delay_ms = max_delay_ms
        self.max_span_ms = max_span_ms
        self._pending: dict[tuple[EventKind, str], _Pending] = {}
        self._ready: list[Envelope] = []
        self._seq = 0

    def add(self, event: MarketEvent, now_ms: int) -> Envelope | None:
        """Adds one event; returns an envelope if this event filled one or closed one's span."""
        key = (kind_of(event), event.asset)
        pending = self._pending.get(key)
        sealed = None
        if pending is not None and event.ts_event - pending.first_event_ms > self.max_span_ms:
            sealed = self._seal(key, self._pending.pop(key), now_ms)
            pending = None
        if pending is None:
            pending = self._pending[key] = _Pending(now_ms, event.ts_event)
        pending.events.append(event)
        if len(pending.events) >= self.max_events:
            del self._pending[key]
            full = self._seal(key, pending, now_ms)
            if sealed is None:
                return full
            self._ready.append(full)
        return sealed

    def take_ready(self) -> list[Envelope]:
        """Envelopes sealed as a side effect of an ``add`` that also returned one."""
        ready, self._ready = self._ready, []
        return ready

    def flush_due(self, now_ms: int) -> list[Envelope]:
        due = [k for k, p in self._pending.items() if now_ms - p.first_ms >= self.max_delay_ms]
        return [self._seal(k, self._pending.pop(k), now_ms) for k in due]

    def flush_all(self, now_ms: int) -> list[Envelope]:
        keys = list(self._pending)
        return [self._seal(k, self._pending.pop(k), now_ms) for k in keys]

    @property
    def pending_events(self) -> int:
        return sum(len(p.events) for p in self._pending.values())

    def _seal(self, key: tuple[EventKind, str], pending: _Pending, now_ms: int) -> Envelope:
        self._seq += 1
        kind, asset = key
        return Envelope(
            kind=kind,
            asset=asset,
            producer=self.producer_id,
            seq=self._seq,
            ts_flush=now_ms,
            events=pending.events,
        )
