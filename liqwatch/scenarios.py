"""Synthetic scenarios for the CLI (``liqwatch synth``, ``liqwatch demo``)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from liqwatch.schema import GroundTruth


def generate_scenario(name: str, out: Path, seed: int | None) -> GroundTruth:
    from producers.synthetic import generate, load_scenario  # noqa: PLC0415

    scenario = load_scenario(name)
    if seed is not None:
        scenario = msgspec.structs.replace(scenario, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    truth: GroundTruth = generate(scenario, out)
    return truth
