"""The benchmarks run end to end on small inputs (figures are not judged here, only produced)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from liqwatch.stack.chserver import ClickHouseServer
from sinks.bench import (
    DAY_MS,
    START_MS,
    _cpu_seconds,
    run_heatmap_query_bench,
    run_sink_bench,
    simulate_btc,
)

_BUSY_THEN_IDLE = """
import sys, time
start = time.process_time()
while time.process_time() - start < 0.3:
    pass
print("busy done", flush=True)
time.sleep(60)
"""


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
    # Servers it did not start are not measured.
    assert result["server_cpu_us_per_row"] == {"raw": None, "sink": None}
    assert result["sink_client_cpu_us_per_row"] > 0


def test_heatmap_bench_reports_its_figures(clickhouse_server: ClickHouseServer) -> None:
    result = run_heatmap_query_bench(2, 5_000, clickhouse_url=clickhouse_server.url, repeats=2)
    assert 8_000 < result["liquidations"] < 12_000
    assert 0 < result["aggregate_rows"] <= result["liquidations"]
    assert result["heatmap_cells"] > 48  # two days of hours, both sides
    assert result["query_ms_median"] > 0
    assert "target < 300 ms" in result["report"]


def test_cpu_of_the_servers_it_started_is_measured_per_phase() -> None:
    """Read from /proc: a child that burns 0.3 s of CPU during the phase shows it."""
    child = subprocess.Popen([sys.executable, "-c", _BUSY_THEN_IDLE], stdout=subprocess.PIPE)
    totals: dict[str, float] = {}
    try:
        with _cpu_seconds(totals, "phase", {"server": child.pid}):
            assert child.stdout is not None
            assert child.stdout.readline() == b"busy done\n"
    finally:
        child.kill()
        child.communicate()
    assert set(totals) == {"phase", "phase:server"}
    assert 0.25 <= totals["phase:server"] < 5
