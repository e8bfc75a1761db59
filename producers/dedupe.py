"""Recently seen event ids: drops the duplicates a reconnect or an overlapping connection
replays, in bounded memory (insertion-ordered dict as a FIFO of the last ``capacity`` ids)."""

from __future__ import annotations

from liqwatch.schema import MarketEvent


class RecentIds:
    __slots__ = ("_capacity", "_seen", "duplicates")

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._seen: dict[str, None] = {}
        self.duplicates = 0

    def fresh(self, events: list[MarketEvent]) -> list[MarketEvent]:
        """The events whose id was not seen within the last ``capacity`` ids."""
        seen = self._seen
        out: list[MarketEvent] = []
        for event in events:
            event_id = event.event_id
            if event_id in seen:
                self.duplicates += 1
                continue
            seen[event_id] = None
            out.append(event)
        while len(seen) > self._capacity:
            del seen[next(iter(seen))]
        return out

    def __len__(self) -> int:
        return len(self._seen)
