"""The engine run the speed-path tests compare: the same envelopes through the fast code and
through the reference forms patched in must give the same bytes."""

from __future__ import annotations

from liqwatch import codec
from processors.engine import Engine, EngineConfig

SNAPSHOT_EVERY = 150  # envelopes between snapshots of every asset (state compared mid-run too)


def run_engine(envelopes: list[bytes]) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(encoded outputs, snapshots taken along the way and at the end, dead letters)."""
    engine = Engine(EngineConfig.default())
    outputs: list[bytes] = []
    snapshots: list[bytes] = []
    for i, blob in enumerate(envelopes):
        events = codec.envelope_decoder.decode(blob).events
        outputs += [codec.encode(o) for o in engine.process(events)]
        if i % SNAPSHOT_EVERY == 0:
            snapshots += [engine.snapshot(a) for a in engine.assets()]
    snapshots += [engine.snapshot(a) for a in engine.assets()]
    dead = [codec.encode(d) for d in engine.drain_dead_letters()]
    return outputs, snapshots, dead
