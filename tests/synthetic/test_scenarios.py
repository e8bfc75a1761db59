"""Loading scenarios: the bundled library, files by path, and clear errors for bad ones."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
import yaml

from producers.synthetic import (
    Scenario,
    ScenarioError,
    load_scenario,
    scenario_names,
    scenarios_dir,
)

REQUIRED = {
    "demo",
    "long_cascade",
    "short_squeeze",
    "two_venue_cascade",
    "whale_liquidation",
    "slow_grind",
    "cluster_swept",
    "cluster_approach_invalidated",
    "cluster_forms_dissolves",
    "stale_venue_cascade",
    "binance_only_sampled",
    "quiet_market",
}


def test_library_has_every_required_scenario() -> None:
    assert set(scenario_names()) >= REQUIRED
    assert scenarios_dir() == Path(__file__).parents[2] / "producers" / "synthetic" / "scenarios"


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_bundled_scenario_is_valid_and_15_to_60_minutes(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name
    assert 15 <= scenario.duration_min <= 60
    assert scenario.description.strip()


def test_scenario_is_frozen() -> None:
    scenario = load_scenario("demo")
    with pytest.raises(AttributeError):
        scenario.seed = 1  # type: ignore[misc]


def test_json_and_yaml_files_load_to_the_same_scenario(tmp_path: Path) -> None:
    raw = yaml.safe_load((scenarios_dir() / "demo.yaml").read_text())
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(raw))
    assert load_scenario(path) == load_scenario("demo")
    assert load_scenario(str(scenarios_dir() / "demo.yaml")) == load_scenario("demo")


def _write_variant(tmp_path: Path, **changes: object) -> Path:
    raw = yaml.safe_load((scenarios_dir() / "long_cascade.yaml").read_text())
    raw.update(changes)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_unknown_name_lists_the_bundled_scenarios() -> None:
    with pytest.raises(ScenarioError, match=r"unknown scenario 'nope'.*long_cascade"):
        load_scenario("nope")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="does not exist"):
        load_scenario(tmp_path / "absent.yaml")


def test_misspelt_field_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="durration_min"):
        load_scenario(_write_variant(tmp_path, durration_min=20))


def test_wrong_type_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"\$\.seed"):
        load_scenario(_write_variant(tmp_path, seed="seven"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"venues": [{"venue": "deribit", "share": 1}]}, "deribit has no synthetic frames"),
        ({"unwinds": [{"crowd": "ghost", "at_min": 5}]}, "no crowd named 'ghost'"),
        ({"pushes": [{"asset": "DOGE", "at_min": 5, "move_pct": 1, "over_s": 10}]}, "DOGE"),
        ({"pushes": [{"asset": "BTC", "at_min": 99, "move_pct": 1, "over_s": 10}]}, "past the end"),
        ({"step_ms": 300}, "must divide 1000"),
        ({"duration_min": 0.5}, "duration_min"),
    ],
)
def test_inconsistent_scenario_is_rejected(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        load_scenario(_write_variant(tmp_path, **changes))


def test_scenario_round_trips_through_json() -> None:
    scenario = load_scenario("stale_venue_cascade")
    assert msgspec.json.decode(msgspec.json.encode(scenario), type=Scenario) == scenario
