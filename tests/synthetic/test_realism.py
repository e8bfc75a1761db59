"""Realism options: price impact of position opens, crowds with a leverage mix."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from producers.synthetic import load_scenario
from producers.synthetic.market import simulate
from producers.synthetic.orders import OrderPlan
from producers.synthetic.scenario import ScenarioError, scenarios_dir

# long_cascade without the realism options: its crowd of 25 M USD at one leverage (25x),
# opening with no price impact, so each test turns on only the option it is about
PLAIN_ASSET = {"open_impact_bp_per_musd": 0.0}
PLAIN_CROWD = {"notional_usd": 25_000_000, "leverage": 25, "leverage_mix": None}


def variant(tmp_path: Path, change: dict[str, Any], crowd: dict[str, Any]) -> Path:
    raw = yaml.safe_load((scenarios_dir() / "long_cascade.yaml").read_text())
    raw["assets"][0].update({**PLAIN_ASSET, **change})
    raw["crowds"][0].update({**PLAIN_CROWD, **crowd})
    raw["crowds"][0] = {k: v for k, v in raw["crowds"][0].items() if v is not None}
    path = tmp_path / "variant.json"
    path.write_text(json.dumps(raw))
    return path


def test_opening_longs_push_price_up_by_their_impact(tmp_path: Path) -> None:
    bp = 1.0
    base = simulate(load_scenario(variant(tmp_path, {}, {})))[0]
    pushed = simulate(load_scenario(variant(tmp_path, {"open_impact_bp_per_musd": bp}, {})))[0]
    # minute 3 to 5: the 25 M USD crowd opens over 90 s; nothing is liquidated yet
    at = 5 * 60
    lift = math.log(pushed.price[at] / base.price[at])
    crowd_only = 25 * bp * 1e-4  # background flow adds a little either way
    assert 0.7 * crowd_only < lift < 1.3 * crowd_only
    before_crowd = abs(math.log(pushed.price[170] / base.price[170]))
    assert before_crowd < 0.2 * crowd_only  # background opens only: same noise, small drift


def test_no_open_impact_by_default(tmp_path: Path) -> None:
    raw = yaml.safe_load(variant(tmp_path, {}, {}).read_text())
    del raw["assets"][0]["open_impact_bp_per_musd"]
    implicit = tmp_path / "implicit.json"
    implicit.write_text(json.dumps(raw))
    explicit = variant(tmp_path, {"open_impact_bp_per_musd": 0.0}, {})
    assert simulate(load_scenario(implicit))[0].price == simulate(load_scenario(explicit))[0].price


def test_crowd_leverage_mix_spreads_positions_over_tiers(tmp_path: Path) -> None:
    mix = {10: 0.2, 25: 0.6, 50: 0.2}
    scenario = load_scenario(variant(tmp_path, {}, {"leverage": None, "leverage_mix": mix}))
    plan = OrderPlan(scenario, scenario.assets[0], np.random.default_rng(1)).orders()
    crowd = [o.leverage for o in plan if o.crowd == "longs_112k"]
    shares = {lev: crowd.count(lev) / len(crowd) for lev in mix}
    assert set(crowd) == set(mix)
    assert all(abs(shares[lev] - w) < 0.1 for lev, w in mix.items())


def test_leverage_and_leverage_mix_together_are_rejected(tmp_path: Path) -> None:
    path = variant(tmp_path, {}, {"leverage_mix": {25: 1.0}})
    with pytest.raises(ScenarioError, match="leverage_mix"):
        load_scenario(path)


def test_unknown_leverage_in_a_crowd_mix_is_rejected(tmp_path: Path) -> None:
    path = variant(tmp_path, {}, {"leverage": None, "leverage_mix": {7: 1.0}})
    with pytest.raises(ScenarioError, match="leverage"):
        load_scenario(path)
