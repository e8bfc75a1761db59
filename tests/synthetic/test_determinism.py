"""Same scenario and seed: byte-identical recording and labels. Another seed: another market."""

from __future__ import annotations

from pathlib import Path

import msgspec

from liqwatch.codec import ground_truth_decoder
from producers.synthetic import generate, labels_path, load_scenario


def test_same_scenario_and_seed_give_identical_bytes(tmp_path: Path) -> None:
    scenario = load_scenario("demo")
    first = generate(scenario, tmp_path / "a" / "demo.jsonl")
    second = generate(scenario, tmp_path / "b" / "demo.jsonl")
    assert first == second
    a, b = tmp_path / "a" / "demo.jsonl", tmp_path / "b" / "demo.jsonl"
    assert a.read_bytes() == b.read_bytes()
    assert labels_path(a).read_bytes() == labels_path(b).read_bytes()


def test_another_seed_gives_another_market(tmp_path: Path) -> None:
    scenario = load_scenario("long_cascade")
    reseeded = msgspec.structs.replace(scenario, seed=scenario.seed + 1)
    generate(scenario, tmp_path / "a.jsonl")
    generate(reseeded, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "b.jsonl").read_bytes()


def test_labels_file_sits_next_to_the_recording_and_decodes(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    truth = generate(load_scenario("whale_liquidation"), out)
    assert labels_path(out) == tmp_path / "run.jsonl.labels.json"
    assert ground_truth_decoder.decode(labels_path(out).read_bytes()) == truth
    assert truth.scenario == "whale_liquidation" and truth.seed == 404
