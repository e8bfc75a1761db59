"""``python -m producers.synthetic NAME|PATH OUT.jsonl [--seed N]``: write a recording + labels.

``python -m producers.synthetic --list`` prints the bundled scenarios.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import msgspec

from producers.synthetic import (
    ScenarioError,
    generate,
    labels_path,
    load_scenario,
    scenario_names,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m producers.synthetic", description=__doc__)
    parser.add_argument("scenario", nargs="?", help="bundled scenario name or a scenario file")
    parser.add_argument("out", nargs="?", type=Path, help="recording to write (JSON lines)")
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument("--list", action="store_true", help="list the bundled scenarios")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(scenario_names()))
        return 0
    if args.scenario is None or args.out is None:
        parser.error("give a scenario and an output path (or --list)")
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.seed is not None:
        scenario = msgspec.structs.replace(scenario, seed=args.seed)
    started = time.perf_counter()
    truth = generate(scenario, args.out)
    elapsed = time.perf_counter() - started
    kinds = Counter(str(label.kind) for label in truth.labels)
    print(
        f"{scenario.name} seed {scenario.seed}: {scenario.duration_min:g} simulated min in "
        f"{elapsed:.2f} s -> {args.out}, labels {dict(sorted(kinds.items()))} -> "
        f"{labels_path(args.out)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
