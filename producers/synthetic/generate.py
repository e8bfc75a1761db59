"""``generate``: run a scenario and write its recording and ground-truth labels."""

from __future__ import annotations

from pathlib import Path

import msgspec

from liqwatch.codec import encode_line
from liqwatch.schema import GroundTruth, Label
from producers.synthetic.market import simulate
from producers.synthetic.recording import record, reported_flags, silences
from producers.synthetic.scenario import Scenario
from producers.synthetic.truth import liquidation_labels


def labels_path(out_path: Path) -> Path:
    """Where ``generate`` writes the labels of the recording at ``out_path``."""
    return out_path.with_name(out_path.name + ".labels.json")


def generate(scenario: Scenario, out_path: Path) -> GroundTruth:
    """Simulate ``scenario``; write the recording (JSON lines) and ``<out>.labels.json``.

    Deterministic: the same scenario (and seed) gives byte-identical files.
    """
    out_path = Path(out_path)
    tapes = simulate(scenario)
    reported = [reported_flags(scenario, tape, i) for i, tape in enumerate(tapes)]
    labels: list[Label] = []
    for tape, flags in zip(tapes, reported, strict=True):
        spec = scenario.asset(tape.asset)
        labels += tape.band_labels
        labels += liquidation_labels(
            spec, scenario.labels, tape.liquidations, flags, silences(scenario)
        )
    labels.sort(key=lambda lab: (lab.start_ms, lab.end_ms, lab.kind, lab.asset))
    truth = GroundTruth(
        scenario=scenario.name,
        seed=scenario.seed,
        start_ms=scenario.start_ms,
        end_ms=scenario.end_ms,
        labels=labels,
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("wb") as out:
        out.writelines(encode_line(frame) for frame in record(scenario, tapes, reported))
    labels_path(out_path).write_bytes(
        msgspec.json.format(msgspec.json.encode(truth), indent=2) + b"\n"
    )
    return truth
