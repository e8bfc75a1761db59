"""Benchmark of the ClickHouse sink (``liqwatch bench sink`` runs the same functions).

    python bench/bench_sink.py                      # starts its own Kafka + ClickHouse
    python bench/bench_sink.py --rows 1000000 --clickhouse-url http://127.0.0.1:8123 \
        --bootstrap 127.0.0.1:9092

Prints the figures as JSON and exits non-zero when a target is missed:
sink >= 80 % of a raw clickhouse-connect insert and >= 200,000 rows/s; heatmap query over 30
days of BTC 1-minute aggregates < 300 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sinks.bench import SINK_REPEATS, run_heatmap_query_bench, run_sink_bench


def _show(name: str, result: dict[str, object]) -> None:
    figures = {k: v for k, v in result.items() if k != "report"}
    print(json.dumps({name: figures}, indent=2))
    print(result["report"], flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows through the sink")
    parser.add_argument("--batch-rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=SINK_REPEATS, help="best of N sink/raw runs")
    parser.add_argument("--days", type=int, default=30, help="days of history for the query")
    parser.add_argument("--events-per-day", type=int, default=50_000)
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: start a broker)")
    parser.add_argument("--clickhouse-url", help="ClickHouse HTTP URL (default: start a server)")
    parser.add_argument("--only", choices=("sink", "heatmap"), help="run one benchmark")
    args = parser.parse_args(argv)

    results: dict[str, dict[str, object]] = {}
    if args.only in (None, "sink"):
        results["sink"] = run_sink_bench(
            args.rows,
            bootstrap=args.bootstrap,
            clickhouse_url=args.clickhouse_url,
            batch_rows=args.batch_rows,
            repeats=args.repeats,
        )
        _show("sink", results["sink"])
    if args.only in (None, "heatmap"):
        results["heatmap"] = run_heatmap_query_bench(
            args.days, args.events_per_day, clickhouse_url=args.clickhouse_url
        )
        _show("heatmap", results["heatmap"])
    return 0 if all(r.get("ok") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
