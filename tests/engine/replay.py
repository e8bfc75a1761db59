"""The engine run the speed-path tests compare: the same envelopes through the fast code and
through the reference forms patched in must give the same bytes."""

from __future__ import annotations

from liqwatch import codec
from liqwatch.bench.worker_load import StressLoad, stress_envelopes
from processors.engine import Engine, EngineConfig

SNAPSHOT_EVERY = 150  # envelopes between snapshots of every asset (state compared mid-run too)


Run = tuple[list[bytes], list[bytes], list[bytes]]  # outputs, snapshots, dead letters


def stress_blobs(events: int, span_ms: int, assets: int = 4) -> list[bytes]:
    """The worker benchmark's stress load, encoded as the worker receives it."""
    load = StressLoad(events=events, assets=assets, envelope_span_ms=span_ms)
    return [codec.encode(e) for e in stress_envelopes(load)]


def assert_same_run(fast: Run, reference: Run) -> None:
    """Outputs, snapshots and dead letters, each byte for byte."""
    outputs, snapshots, dead = fast
    assert outputs == reference[0]
    assert snapshots == reference[1]
    assert dead == reference[2]


def run_engine(envelopes: list[bytes]) -> Run:
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
