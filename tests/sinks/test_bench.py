"""The benchmarks run end to end on small inputs (figures are not judged here, only produced)."""

from __future__ import annotations

import numpy as np

from liqwatch.stack.chserver import ClickHouseServer
from sinks.bench import DAY_MS, START_MS, run_heatmap_query_bench, run_sink_bench, simulate_btc


def test_simulated_history_is_a_plausible_deterministic_tape() -> None:
    a, b = simulate_btc(2, 10_000, seed=3), simulate_btc(2, 10_000, seed=3)
    assert a.columns == b.columns
    assert 17_000 < a.count < 23_000
    names = dict(zip(("venue", "symbol"), a.columns[:2], strict=False))
    assert set(names["venue"]) >= {"binance", "bybit", "okx"}
    ts = np.array(a.columns[10])
    assert (np.diff(ts) >= 0).all() and ts[0] >= START_MS and ts[-1] < START_MS + 2 * DAY_MS
    assert len(set(a.columns[12])) == a.count  # event ids are unique


def test_sink_bench_reports_its_figures(
    kafka_bootstrap: str, clickhouse_server: ClickHouseServer
) -> None:
    result = run_sink_bench(
        20_000,
        bootstrap=kafka_bootstrap,
        clickhouse_url=clickhouse_server.url,
        batch_rows=5_000,
        repeats=1,
    )
    assert result["sink_rows_stored"] == 20_000
    assert result["sink_rows_per_s"] > 0 and result["raw_insert_rows_per_s"] > 0
    assert result["ratio_vs_raw"] == round(
        result["sink_rows_per_s"] / result["raw_insert_rows_per_s"], 3
    )
    assert 0 < result["sink_buffer_high_water_rows"] <= 20_000
    assert isinstance(result["ok"], bool)
    assert f"{result['sink_rows_per_s']:,} rows/s" in result["report"]


def test_heatmap_bench_reports_its_figures(clickhouse_server: ClickHouseServer) -> None:
    result = run_heatmap_query_bench(2, 5_000, clickhouse_url=clickhouse_server.url, repeats=2)
    assert 8_000 < result["liquidations"] < 12_000
    assert 0 < result["aggregate_rows"] <= result["liquidations"]
    assert result["heatmap_cells"] > 48  # two days of hours, both sides
    assert result["query_ms_median"] > 0
    assert "target < 300 ms" in result["report"]
