"""Parser throughput per venue against a plain stdlib-json baseline, in the same run.

    python bench/bench_parse.py [--frames 200000] [--venues binance,bybit] [--json]

Prints a table (or the result dict as JSON) and exits 1 if Binance/Bybit miss the targets:
>= 500,000 liquidation frames/s per core and >= 1.5x the baseline. On a busy shared machine
the absolute figure drops; the speedup against the baseline measured alongside is the fair one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from liqwatch.schema import Venue
from producers.bench import run_parse_bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000, help="frames per venue")
    parser.add_argument("--venues", default="", help="comma-separated venues (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    venues = [Venue(v) for v in args.venues.split(",") if v] or None
    result = run_parse_bench(args.frames, venues, args.repeats)
    print(json.dumps(result, indent=2) if args.json else result["report"])
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
