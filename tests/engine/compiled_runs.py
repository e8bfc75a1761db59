"""The engine runs the compiled-vs-sources test compares: every bundled scenario and the
worker benchmark's stress load, through ``run_engine``.

``python -m tests.engine.compiled_runs WORKDIR OUT`` writes them to OUT (msgpack), so a child
process with ``LIQWATCH_ENGINE=interpreted`` can run them on the Python sources.
"""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from liqwatch import codec
from producers.synthetic import scenario_names
from tests.engine.replay import Run, run_engine, stress_blobs
from tests.worker.recording import scenario_envelopes

STRESS = ((2_000, 40_000), (250, 15_000))  # (envelope span ms, events)


def all_runs(workdir: Path) -> dict[str, Run]:
    runs: dict[str, Run] = {}
    for name in scenario_names():
        _truth, envelopes = scenario_envelopes(name, workdir)
        runs[name] = run_engine([codec.encode(e) for e in envelopes])
    for span_ms, events in STRESS:
        runs[f"stress-{span_ms}ms"] = run_engine(stress_blobs(events, span_ms))
    return runs


def main(workdir: str, out: str) -> None:
    Path(out).write_bytes(msgspec.msgpack.encode(all_runs(Path(workdir))))


if __name__ == "__main__":
    main(*sys.argv[1:3])
