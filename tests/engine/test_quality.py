"""Detection quality on the scenario library (synthetic market with ground-truth labels).

Runs the bundled scenarios once each (their own seeds) through the real parsers and the
engine, as ``liqwatch bench detect`` does (which adds two more seeds per scenario).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from liqwatch.bench import engine as engine_bench
from liqwatch.bench import model as model_bench
from liqwatch.bench.detect import measure

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quality() -> dict[str, Any]:
    return measure(None, seeds=1)


def test_cascades_are_found_and_nothing_else_is_called_one(quality: dict[str, Any]) -> None:
    c = quality["detectors"]["cascade"]
    assert c["labels"] >= 8
    assert c["recall"] >= 0.95
    assert c["precision"] >= 0.90
    assert quality["detectors"]["whale_as_cascade"]["false_alarms"] == []


def test_cascades_are_reported_within_two_seconds_of_the_burst(quality: dict[str, Any]) -> None:
    """From the labelled start, which is the burst onset (docs/synthetic.md), not the
    trickle of liquidations before it."""
    c = quality["detectors"]["cascade"]
    assert c["median_delay_s"] is not None and c["median_delay_s"] <= 2.0
    assert c["median_onset_delay_s"] <= 2.0
    assert quality["checks"]["cascade.median_delay_s"]


def test_sweeps_meet_their_targets(quality: dict[str, Any]) -> None:
    s = quality["detectors"]["sweep"]
    assert s["labels"] >= 8
    assert s["recall"] >= 0.90
    assert s["precision"] >= 0.80


def test_cluster_shifts_meet_their_targets_and_approaches_come_first(
    quality: dict[str, Any],
) -> None:
    shift = quality["detectors"]["cluster_shift"]
    assert shift["labels"] >= 12
    assert shift["recall"] >= 0.90
    assert shift["precision"] >= 0.80
    approach = quality["detectors"]["approach"]
    assert approach["recall"] >= 0.80
    assert approach["precision"] >= 0.80
    assert approach["median_delay_s"] <= 0  # raised before the labelled approach, not after


def test_report_names_every_target(quality: dict[str, Any]) -> None:
    assert set(quality["checks"]) == {
        "cascade.recall", "cascade.precision", "cascade.median_delay_s",
        "sweep.recall", "sweep.precision", "cluster_shift.recall", "cluster_shift.precision",
    }  # fmt: skip
    assert "precision" in quality["report"] and "onset" in quality["report"]
    # one seed per scenario: every recording is a tune recording (its scenario's own seed)
    assert set(quality["splits"]) == {"tune"}
    tune = quality["splits"]["tune"]["cluster_shift"]
    assert tune["recall"] == quality["detectors"]["cluster_shift"]["recall"]
    assert "tune (own seeds)" in quality["report"]


def test_model_backtest_beats_uniform_bands(tmp_path: Path) -> None:
    from producers.synthetic.scenario import scenarios_dir

    for name in ("long_cascade", "short_squeeze"):
        (tmp_path / f"{name}.yaml").write_text((scenarios_dir() / f"{name}.yaml").read_text())
    result = model_bench.run(tmp_path, seeds=1)
    assert result["liquidations"] > 100
    assert result["model_share"] > 2 * result["baseline_share"] > 0
    assert "baseline" in result["report"]


def test_engine_benchmark_measures_both_sides() -> None:
    result = engine_bench.run_embedded(seconds=2, rate=5000, naive_events=2000)
    assert result["events"] == 10_000
    assert result["prefix_events"] >= 2000
    assert result["engine_events_s"] > 0 and result["naive_events_s"] > 0
    assert "naive" in result["report"]
