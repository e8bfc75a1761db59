"""``python -m producers.synthetic``: writes a recording and says what it wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from liqwatch.codec import ground_truth_decoder
from producers.synthetic.__main__ import main


def test_cli_writes_recording_and_labels_with_seed_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "w.jsonl"
    assert main(["whale_liquidation", str(out), "--seed", "5"]) == 0
    truth = ground_truth_decoder.decode((tmp_path / "w.jsonl.labels.json").read_bytes())
    assert truth.seed == 5 and out.stat().st_size > 100_000
    assert "whale_liquidation seed 5" in capsys.readouterr().out


def test_cli_unknown_scenario_exits_2_with_the_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope", "x.jsonl"]) == 2
    assert "quiet_market" in capsys.readouterr().err


def test_cli_lists_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    assert "demo" in capsys.readouterr().out.split()
