"""The seeded synthetic market: known ground truth, emitted as venue-native frames.

>>> truth = generate(load_scenario("demo"), Path("demo.jsonl"))  # + demo.jsonl.labels.json

See docs/synthetic.md for the model, the parameters and the exact label definitions.
"""

from producers.synthetic.generate import generate, labels_path
from producers.synthetic.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    scenario_names,
    scenarios_dir,
)

__all__ = [
    "Scenario",
    "ScenarioError",
    "generate",
    "labels_path",
    "load_scenario",
    "scenario_names",
    "scenarios_dir",
]
