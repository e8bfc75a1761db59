"""Framework-free glue between envelopes and the engine: offsets, skips, snapshots.

The Faust worker and the crash-recovery test both drive this class. A snapshot records, per
asset, the engine state and the highest input offset (per topic-partition) it reflects; after a
restart, envelopes at or below those offsets are skipped, so the state is as if the worker had
never died.

Engine time is event time and advances per asset from that asset's own events (the engine
runs the time-driven work up to each run's first event). The runner never advances the engine
with a clock taken across assets: which other asset's envelope happened to arrive first
depends on fetch timing and on where a restart happened, and would leak into the outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import msgspec

from liqwatch.schema import AlertMessage, DeadLetter, Envelope, MarketEvent, Signal

Output = Signal | AlertMessage


class EngineLike(Protocol):
    def process(self, events: Sequence[MarketEvent]) -> list[Output]: ...

    def snapshot(self, asset: str) -> bytes: ...

    def restore(self, asset: str, blob: bytes) -> None: ...

    def assets(self) -> list[str]: ...

    def drain_dead_letters(self) -> list[DeadLetter]: ...


EngineFactory = Callable[[], EngineLike]


class AssetSnapshot(msgspec.Struct, frozen=True):
    engine_state: bytes
    offsets: dict[str, int]  # "topic:partition" -> last offset reflected


_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(AssetSnapshot)


def tp_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def decode_snapshot(value: bytes) -> AssetSnapshot:
    return _snapshot_decoder.decode(value)


def foreign_events(envelope: Envelope) -> list[MarketEvent]:
    """Events whose asset is not the envelope's: they would change state no snapshot covers."""
    return [e for e in envelope.events if e.asset != envelope.asset]


class EngineRunner:
    def __init__(self, new_engine: EngineFactory) -> None:
        self._new_engine = new_engine
        self.engine = new_engine()
        self._offsets: dict[str, dict[str, int]] = {}
        self._dirty: set[str] = set()

    def restore(self, asset: str, value: bytes) -> None:
        snap = decode_snapshot(value)
        self.engine.restore(asset, snap.engine_state)
        self._offsets[asset] = dict(snap.offsets)

    def already_reflected(self, asset: str, topic: str, partition: int, offset: int) -> bool:
        last = self._offsets.get(asset, {}).get(tp_key(topic, partition))
        return last is not None and offset <= last

    def handle(self, envelope: Envelope, topic: str, partition: int, offset: int) -> list[Output]:
        """Processes one envelope; the caller checks ``already_reflected`` first."""
        out = self.engine.process(envelope.events)
        self._offsets.setdefault(envelope.asset, {})[tp_key(topic, partition)] = offset
        self._dirty.add(envelope.asset)
        return out

    def dead_letters(self) -> list[DeadLetter]:
        return self.engine.drain_dead_letters()

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

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

    def forget(self, assets: Iterable[str]) -> None:
        """Drops assets whose partitions were revoked, and their unsaved progress.

        The engine has no per-asset delete, so the kept assets move to a fresh engine through
        their own snapshots (exact: restore continues bit for bit).
        """
        gone = set(assets)
        if not gone:
            return
        kept = {a: self.engine.snapshot(a) for a in self.engine.assets() if a not in gone}
        self.engine = self._new_engine()
        for asset, blob in kept.items():
            self.engine.restore(asset, blob)
        for asset in gone:
            self._offsets.pop(asset, None)
            self._dirty.discard(asset)
