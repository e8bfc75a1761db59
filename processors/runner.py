"""Framework-free glue between envelopes and the engine: offsets, skips, snapshots.

The Faust worker and the crash-recovery test both drive this class. A snapshot records, per
asset, the engine state and the highest input offset (per topic-partition) it reflects; after a
restart, envelopes at or below those offsets are skipped, so the state is as if the worker had
never died.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from liqwatch.schema import AlertMessage, Envelope, MarketEvent, Signal

Output = Signal | AlertMessage


class EngineLike(Protocol):
    def process(self, events: Sequence[MarketEvent]) -> list[Output]: ...

    def advance(self, now_ms: int) -> list[Output]: ...

    def snapshot(self, asset: str) -> bytes: ...

    def restore(self, asset: str, blob: bytes) -> None: ...


class AssetSnapshot(msgspec.Struct, frozen=True):
    engine_state: bytes
    offsets: dict[str, int]  # "topic:partition" -> last offset reflected


_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(AssetSnapshot)


def tp_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


class EngineRunner:
    def __init__(self, engine: EngineLike) -> None:
        self.engine = engine
        self._offsets: dict[str, dict[str, int]] = {}
        self._dirty: set[str] = set()
        self._clock_ms = 0

    def restore(self, asset: str, value: bytes) -> None:
        snap = _snapshot_decoder.decode(value)
        self.engine.restore(asset, snap.engine_state)
        self._offsets[asset] = dict(snap.offsets)

    def already_reflected(self, asset: str, topic: str, partition: int, offset: int) -> bool:
        last = self._offsets.get(asset, {}).get(tp_key(topic, partition))
        return last is not None and offset <= last

    def handle(self, envelope: Envelope, topic: str, partition: int, offset: int) -> list[Output]:
        """Processes one envelope; the caller checks ``already_reflected`` first."""
        events = envelope.events
        out = self.engine.process(events)
        if events:
            newest = max(e.ts_event for e in events)
            if newest > self._clock_ms:
                self._clock_ms = newest
                out.extend(self.engine.advance(newest))
        self._offsets.setdefault(envelope.asset, {})[tp_key(topic, partition)] = offset
        self._dirty.add(envelope.asset)
        return out

    def take_snapshots(self) -> dict[str, bytes]:
        """Snapshots of every asset changed since the last call."""
        snaps = {
            asset: _snapshot_encoder.encode(
                AssetSnapshot(
                    engine_state=self.engine.snapshot(asset), offsets=self._offsets[asset]
                )
            )
            for asset in sorted(self._dirty)
        }
        self._dirty.clear()
        return snaps
