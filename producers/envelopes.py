"""Gathers events into per-(kind, asset) envelopes: one Kafka message carries many events.

Flush rules: a full envelope (``max_events``) goes at once; otherwise an envelope waits at most
``max_delay_ms`` after its first event; and when the source is idle the caller flushes everything
(``flush_all``), so a quiet market pays no delay while a cascade fills envelopes.
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
    events: list[MarketEvent] = field(default_factory=list)


class EnvelopeBatcher:
    def __init__(self, producer_id: str, max_events: int = 500, max_delay_ms: int = 50) -> None:
        self.producer_id = producer_id
        self.max_events = max_events
        self.max_delay_ms = max_delay_ms
        self._pending: dict[tuple[EventKind, str], _Pending] = {}
        self._seq = 0

    def add(self, event: MarketEvent, now_ms: int) -> Envelope | None:
        """Adds one event; returns an envelope if this event filled one."""
        key = (kind_of(event), event.asset)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(first_ms=now_ms)
        pending.events.append(event)
        if len(pending.events) >= self.max_events:
            del self._pending[key]
            return self._seal(key, pending, now_ms)
        return None

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
