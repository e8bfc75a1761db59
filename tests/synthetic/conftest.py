"""Every bundled scenario generated once per test session (the whole library takes ~2 s)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from liqwatch.codec import recorded_frame_decoder
from liqwatch.schema import GroundTruth, RecordedFrame
from producers.synthetic import generate, load_scenario, scenario_names


@dataclass(frozen=True)
class Generated:
    path: Path
    truth: GroundTruth
    frames: list[RecordedFrame]


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Generated]:
    out = tmp_path_factory.mktemp("synthetic")
    generated: dict[str, Generated] = {}
    for name in scenario_names():
        path = out / f"{name}.jsonl"
        truth = generate(load_scenario(name), path)
        lines = path.read_bytes().splitlines()
        frames = [recorded_frame_decoder.decode(line) for line in lines]
        generated[name] = Generated(path, truth, frames)
    return generated
