"""``liqwatch bench sink``: sink throughput against a raw insert, and the heatmap query time.

Both benchmarks print nothing themselves and return a dict of figures (the CLI and
``bench/bench_sink.py`` print them). Targets: the sink stores >= 80 % of the rows/s of a raw
clickhouse-connect insert of the same rows, and >= 200,000 rows/s; the heatmap over 30 days of
BTC 1-minute aggregates answers in < 300 ms. Without a server URL each starts its own local
Kafka broker / ClickHouse server (``liqwatch.stack``) in a temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from clickhouse_connect.driver.client import Client
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from liqwatch import codec
from liqwatch.schema import Completeness, Envelope, EventKind, Liquidation, Side, Venue
from liqwatch.settings import ClickHouseSettings, KafkaSettings, ObservabilitySettings
from liqwatch.topics import Topics
from sinks.clickhouse import rows as r
from sinks.clickhouse.connect import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.store import Store
from sinks.service import run_sink
from sinks.settings import RetentionSettings, SinkSettings

SINK_RATIO_TARGET = 0.8
SINK_ROWS_PER_S_TARGET = 200_000
HEATMAP_MS_TARGET = 300.0
# best of N sink and raw runs, interleaved: a shared machine only ever slows a run down, and the
# raw insert alone moves +-10 % between runs
SINK_REPEATS = 3
DAY_MS = 86_400_000
START_MS = 1_757_000_000_000  # 2025-09-04, a fixed start so runs are comparable

_VENUES = list(Venue)
_VENUE_WEIGHTS = np.array([0.34, 0.06, 0.25, 0.2, 0.08, 0.07])
_COMPLETENESS = {
    Venue.BINANCE: Completeness.SAMPLED,
    Venue.BINANCE_COINM: Completeness.SAMPLED,
    Venue.OKX: Completeness.PARTIAL,
}

# Hourly x ~0.5 % price bands x side, over the whole range: the recipe "heatmap for an asset
# over a range" in docs/sql.md with its range and asset as parameters.
HEATMAP_QUERY = """
SELECT
    toStartOfHour(ts_minute) AS hour,
    side,
    toInt32(floor(bucket_index / 5)) * 5 AS band,
    round(pow(1.001, band), 2) AS price_lo,
    round(pow(1.001, band + 5), 2) AS price_hi,
    round(sum(notional_usd)) AS notional_usd,
    sum(events) AS events
FROM {db}.liquidations_1m
WHERE asset = {{asset:String}}
  AND ts_minute >= toDateTime({{start:Int64}}, 'UTC')
  AND ts_minute < toDateTime({{end:Int64}}, 'UTC')
GROUP BY hour, side, band
ORDER BY hour, band, side
"""


# -- simulated history --------------------------------------------------------------------
@dataclass(frozen=True)
class History:
    """Columns of simulated liquidations, in the liquidations table's column order."""

    columns: list[list[Any]]

    @property
    def count(self) -> int:
        return len(self.columns[0])

    def table_rows(self, lo: int = 0, hi: int | None = None) -> r.TableRows:
        return r.TableRows("liquidations", r.LIQUIDATION_COLUMNS, [c[lo:hi] for c in self.columns])

    def events(self) -> list[Liquidation]:
        names = r.LIQUIDATION_COLUMNS
        return [
            Liquidation(**dict(zip(names, row, strict=True)))
            for row in zip(*self.columns, strict=True)
        ]


def simulate_btc(
    days: float, events_per_day: int, seed: int = 7, start_ms: int = START_MS
) -> History:
    """A month-like BTC tape: a random-walk price, liquidations clustered in cascades."""
    rng = np.random.default_rng(seed)
    minutes = int(days * 1440)
    price = 110_000 * np.exp(np.cumsum(rng.normal(0, 0.03 / np.sqrt(1440), minutes)))
    # 60 % of the events spread evenly, 40 % in about two cascades a day of 5-30 minutes
    # during which one side is liquidated nine times out of ten.
    rate = np.full(minutes, events_per_day * 0.6 / 1440)
    bias = np.full(minutes, 0.5)  # share of longs among the liquidated
    for start in rng.integers(0, minutes, size=max(1, round(days * 2))):
        length = int(rng.integers(5, 30))
        rate[start : start + length] += events_per_day * 0.4 / (2 * 17)
        bias[start : start + length] = rng.choice([0.1, 0.9])
    counts = rng.poisson(rate)
    minute = np.repeat(np.arange(minutes), counts)
    n = int(counts.sum())
    ts = start_ms + minute * 60_000 + rng.integers(0, 60_000, n)
    order = np.argsort(ts, kind="stable")
    minute, ts = minute[order], ts[order]
    px = np.round(price[minute] * (1 + rng.normal(0, 0.002, n)), 1)
    usd = np.round(rng.lognormal(8.5, 1.4, n), 2)
    venue_idx = rng.choice(len(_VENUES), size=n, p=_VENUE_WEIGHTS / _VENUE_WEIGHTS.sum())
    is_long = rng.random(n) < bias[minute]
    venues = [_VENUES[i] for i in venue_idx.tolist()]
    columns: dict[str, list[Any]] = {
        "venue": [v.value for v in venues],
        "symbol": ["BTCUSDT"] * n,
        "instrument": ["BTC-USDT-PERP"] * n,
        "asset": ["BTC"] * n,
        "side": np.where(is_long, Side.LONG.value, Side.SHORT.value).tolist(),
        "price": px.tolist(),
        "avg_price": [None] * n,
        "qty": np.round(usd / px, 6).tolist(),
        "notional_usd": usd.tolist(),
        "completeness": [_COMPLETENESS.get(v, Completeness.COMPLETE).value for v in venues],
        "ts_event": ts.tolist(),
        "ts_recv": (ts + rng.integers(2, 40, n)).tolist(),
        "event_id": [f"sim:{seed}:{i}" for i in range(n)],
    }
    return History([columns[name] for name in r.LIQUIDATION_COLUMNS])


# -- servers ------------------------------------------------------------------------------
@contextlib.contextmanager
def _servers(
    bootstrap: str | None, clickhouse_url: str | None, work: Path
) -> Iterator[tuple[str, str, dict[str, int]]]:
    """The given endpoints, or local servers started (and stopped) for the benchmark, with
    the pids of those started ("server", "kafka"): their CPU is measured too."""
    from liqwatch.stack.chserver import ClickHouseServer  # noqa: PLC0415  (only when needed)
    from liqwatch.stack.kafka import KafkaBroker  # noqa: PLC0415

    stack: list[Any] = []
    pids: dict[str, int] = {}
    try:
        if clickhouse_url is None:
            stack.append(ClickHouseServer(work / "clickhouse").start())
            clickhouse_url = stack[-1].url
            pids["server"] = stack[-1].process.pid
        if bootstrap is None:
            stack.append(KafkaBroker(work / "kafka").start(timeout=120))
            bootstrap = stack[-1].bootstrap
            pids["kafka"] = stack[-1].process.pid
        yield bootstrap, clickhouse_url, {k: v for k, v in pids.items() if v is not None}
    finally:
        for server in reversed(stack):
            server.stop()


def _count(client: Client, sql: str) -> int:
    return int(str(client.command(sql)))


def _fresh_database(client: Client, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    migrate(client, name, RetentionSettings())
    return name


# -- sink throughput ----------------------------------------------------------------------
@dataclass(frozen=True)
class SinkBenchConfig:
    batch_rows: int = 50_000
    envelope_size: int = 200
    repeats: int = SINK_REPEATS
    overrides: tuple[tuple[str, Any], ...] = ()


def run_sink_bench(
    rows: int = 1_000_000,
    *,
    bootstrap: str | None = None,
    clickhouse_url: str | None = None,
    batch_rows: int = 50_000,
    envelope_size: int = 200,
    repeats: int = SINK_REPEATS,
    seed: int = 7,
    sink_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Rows/s through the Kafka sink vs a raw clickhouse-connect insert of the same rows.

    Both sides insert the same simulated liquidations in the same batch size into identical
    freshly migrated databases (materialized view included). The raw side starts from columns
    already built in memory; the sink starts from JSON envelopes already in Kafka.
    """
    history = simulate_btc(days=1, events_per_day=int(rows * 1.1) + 1_000, seed=seed)
    history = History([c[:rows] for c in history.columns])
    config = SinkBenchConfig(
        batch_rows, envelope_size, max(1, repeats), tuple((sink_overrides or {}).items())
    )
    with (
        tempfile.TemporaryDirectory(prefix="liqwatch-bench-") as tmp,
        _servers(bootstrap, clickhouse_url, Path(tmp)) as (kafka, url, pids),
    ):
        client = connect(ClickHouseSettings(url=url, database="default"))
        databases = [_fresh_database(client, p) for p in ("bench_raw", "bench_plain", "bench_sink")]
        try:
            return _sink_bench(
                client, kafka, url, history, databases=databases, config=config, pids=pids
            )
        finally:
            for db in databases:
                client.command(f"DROP DATABASE IF EXISTS {db} SYNC")
            client.close()


def _sink_bench(
    client: Client,
    kafka: str,
    url: str,
    history: History,
    *,
    databases: list[str],
    config: SinkBenchConfig,
    pids: dict[str, int],
) -> dict[str, Any]:
    raw_db, plain_db, sink_db = databases
    topics = Topics(f"bench{uuid.uuid4().hex[:8]}.")
    _produce(kafka, topics, history, config.envelope_size)
    raw, plain, sink = [], [], []
    cpu: dict[str, float] = {}
    for _ in range(config.repeats):
        _settle(client)
        with _cpu_seconds(cpu, "raw", pids):
            raw.append(_raw_insert(client, raw_db, history, config.batch_rows, tuned=False))
        _settle(client)
        plain.append(_raw_insert(client, plain_db, history, config.batch_rows, tuned=True))
        _truncate(client, sink_db)
        _settle(client)
        with _cpu_seconds(cpu, "sink", pids):
            run = _sink_run(kafka, url, sink_db, topics, expected=history.count, config=config)
        sink.append(run)
    best = max(sink, key=lambda run: float(run["rows_per_s"]))

    def per_row(key: str) -> float | None:
        seconds = cpu.get(key)
        return None if seconds is None else round(seconds / config.repeats / history.count * 1e6, 2)

    stored = _count(client, f"SELECT count() FROM {sink_db}.liquidations FINAL")  # noqa: S608
    # Ratios come from the rounded rates the report prints, so its figures agree with each other.
    rate, raw_rate = round(float(best["rows_per_s"])), round(max(raw))
    plain_rate = round(max(plain))
    result: dict[str, Any] = {
        "rows": history.count,
        "batch_rows": config.batch_rows,
        "envelope_size": config.envelope_size,
        "repeats": config.repeats,
        "raw_insert_rows_per_s": raw_rate,
        "raw_insert_plain_types_rows_per_s": plain_rate,
        "sink_rows_per_s": rate,
        "sink_runs_rows_per_s": [round(float(run["rows_per_s"])) for run in sink],
        "sink_seconds": round(float(best["seconds"]), 3),
        "sink_buffer_high_water_rows": best["high_water"],
        "sink_rows_stored": stored,
        # CPU of this Python process per row (the servers' CPU not included): where a shared
        # machine's cores go, and why the sink slows down more than a raw insert when busy.
        "raw_client_cpu_us_per_row": per_row("raw"),
        "sink_client_cpu_us_per_row": per_row("sink"),
        # CPU of the servers this run started (None with given URLs): on a machine they share,
        # rows/s follow the total CPU per row of each path, servers included.
        "server_cpu_us_per_row": {k: per_row(f"{k}:server") for k in ("raw", "sink")},
        "kafka_cpu_us_per_row": {k: per_row(f"{k}:kafka") for k in ("raw", "sink")},
        "load_average_1m": round(os.getloadavg()[0], 2),
        "ratio_vs_raw": round(rate / raw_rate, 3),
        "ratio_vs_plain_types": round(rate / plain_rate, 3),
        "target_ratio": SINK_RATIO_TARGET,
        "target_rows_per_s": SINK_ROWS_PER_S_TARGET,
        "ok": rate >= SINK_ROWS_PER_S_TARGET
        and rate / raw_rate >= SINK_RATIO_TARGET
        and stored == history.count,
    }
    result["report"] = sink_report(result)
    return result


def sink_report(r: dict[str, Any]) -> str:
    met = "met" if r["ok"] else "NOT met"
    return (
        f"sink: {r['rows']:,} liquidations in envelopes of {r['envelope_size']} from Kafka into "
        f"ClickHouse, batches of {r['batch_rows']:,}, best of {r['repeats']} "
        f"(load average {r['load_average_1m']})\n"
        f"  sink                      {r['sink_rows_per_s']:>10,} rows/s  "
        f"({r['sink_client_cpu_us_per_row']} us CPU/row in this process)\n"
        f"  raw insert (same rows)    {r['raw_insert_rows_per_s']:>10,} rows/s  "
        f"({r['raw_client_cpu_us_per_row']} us CPU/row; columns prebuilt)\n"
        f"  raw insert, plain types   {r['raw_insert_plain_types_rows_per_s']:>10,} rows/s\n"
        f"  CPU us/row, servers: ClickHouse raw {r['server_cpu_us_per_row']['raw']} / sink "
        f"{r['server_cpu_us_per_row']['sink']}, Kafka raw {r['kafka_cpu_us_per_row']['raw']} / "
        f"sink {r['kafka_cpu_us_per_row']['sink']}\n"
        f"  ratio {r['ratio_vs_raw']:.2f} (target >= {r['target_ratio']}), "
        f"target >= {r['target_rows_per_s']:,} rows/s, stored exactly once: "
        f"{r['sink_rows_stored'] == r['rows']}: {met}"
    )


@contextlib.contextmanager
def _cpu_seconds(totals: dict[str, float], key: str, pids: dict[str, int]) -> Iterator[None]:
    """Adds the CPU seconds spent meanwhile by this process (``key``) and by each server
    (``key:server``, ``key:kafka``) to ``totals``."""
    before = _process_cpu(pids)
    try:
        yield
    finally:
        for name, spent in _process_cpu(pids).items():
            label = key if name == "self" else f"{key}:{name}"
            totals[label] = totals.get(label, 0.0) + spent - before[name]


def _process_cpu(pids: dict[str, int]) -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    found = {"self": usage.ru_utime + usage.ru_stime}
    for name, pid in pids.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # not Linux, or gone: that figure is left out
        found[name] = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return found


def _truncate(client: Client, database: str) -> None:
    for table in ("liquidations", "liquidations_1m", "sink_offsets"):
        client.command(f"TRUNCATE TABLE {database}.{table}")


def _settle(client: Client, quiet_s: float = 0.5, timeout_s: float = 60.0) -> None:
    """Waits until the server has merged the previous run's parts (no merge for ``quiet_s``).

    Each run leaves about twenty parts per table that the server merges in the background
    for a few seconds afterwards: without this, that work lands in the next run's time and
    CPU, and the runs are not measured alike (the sink always followed a raw insert)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        if _count(client, "SELECT count() FROM system.merges") > 0:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        time.sleep(0.05)


def _raw_insert(
    client: Client, database: str, history: History, batch_rows: int, tuned: bool
) -> float:
    """Rows/s of plain column-oriented inserts, in the sink's batch size (columns prebuilt)."""
    chunks = [history.table_rows(lo, lo + batch_rows) for lo in range(0, history.count, batch_rows)]
    client.command(f"TRUNCATE TABLE {database}.liquidations")
    client.command(f"TRUNCATE TABLE {database}.liquidations_1m")
    store = Store(client, database)
    started = time.perf_counter()
    for chunk in chunks:
        if tuned:
            store.insert(chunk)
        else:
            client.insert(
                "liquidations",
                chunk.columns,
                database=database,
                column_names=list(chunk.names),
                column_oriented=True,
                settings={"async_insert": 0},
            )
    return history.count / (time.perf_counter() - started)


def _produce(bootstrap: str, topics: Topics, history: History, envelope_size: int) -> None:
    from liqwatch.stack.kafka import create_topics  # noqa: PLC0415

    create_topics(bootstrap, topics.all, partitions=4)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"}
    )
    events = history.events()
    for seq, lo in enumerate(range(0, len(events), envelope_size)):
        chunk = events[lo : lo + envelope_size]
        envelope = Envelope(
            kind=EventKind.LIQUIDATION,
            asset="BTC",
            producer="bench",
            seq=seq,
            ts_flush=chunk[-1].ts_recv,
            events=list(chunk),
        )
        while True:
            try:
                producer.produce(
                    topics.liquidations, key=f"BTC{seq % 4}", value=codec.encode(envelope)
                )
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60) != 0:
        raise RuntimeError("benchmark input not fully produced to Kafka")


def _sink_run(
    kafka: str, url: str, database: str, topics: Topics, *, expected: int, config: SinkBenchConfig
) -> dict[str, Any]:
    registry = CollectorRegistry()
    values: dict[str, Any] = {
        "group_id": f"bench-{uuid.uuid4().hex[:8]}",
        "batch_max_rows": config.batch_rows,
        "buffer_max_rows": config.batch_rows * 6,
        "metrics_port": 0,
        "migrate_on_start": False,
        "kafka": KafkaSettings(bootstrap_servers=kafka, topic_prefix=topics.prefix),
        "clickhouse": ClickHouseSettings(url=url, database=database),
        "observability": ObservabilitySettings(metrics_host="127.0.0.1"),
    }
    settings = SinkSettings(**{**values, **dict(config.overrides)})
    stop = threading.Event()
    thread = threading.Thread(target=run_sink, args=(settings, stop, registry), daemon=True)
    thread.start()
    try:
        first = _wait_value(
            registry, "liqwatch_sink_messages_total", {"topic": topics.liquidations}, 1, 120
        )
        done = _wait_value(
            registry, "liqwatch_sink_rows_total", {"table": "liquidations"}, expected, 300
        )
    finally:
        stop.set()
        thread.join(60)
    seconds = done - first
    high = registry.get_sample_value("liqwatch_sink_buffer_rows_high_water") or 0.0
    return {"seconds": seconds, "rows_per_s": expected / seconds, "high_water": int(high)}


def _wait_value(
    registry: CollectorRegistry, name: str, labels: dict[str, str], target: float, timeout: float
) -> float:
    """perf_counter time at which the sample reached ``target``, within 10 ms."""
    # Only the watched metric's collector, so polling costs next to nothing.
    watched = registry.restricted_registry([name])
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if _sample(watched.collect(), name, labels) >= target:
            return time.perf_counter()
        time.sleep(0.01)
    raise TimeoutError(f"{name}{labels} did not reach {target} in {timeout:.0f}s")


def _sample(metrics: Iterable[Metric], name: str, labels: dict[str, str]) -> float:
    for metric in metrics:
        for sample in metric.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


# -- heatmap query ------------------------------------------------------------------------
def run_heatmap_query_bench(
    days: int = 30,
    events_per_day: int = 50_000,
    *,
    clickhouse_url: str | None = None,
    repeats: int = 7,
    seed: int = 11,
    keep_database: bool = False,
) -> dict[str, Any]:
    """Time the heatmap recipe over ``days`` of simulated BTC history (all venues)."""
    with (
        tempfile.TemporaryDirectory(prefix="liqwatch-bench-") as tmp,
        _servers("unused", clickhouse_url, Path(tmp)) as (_kafka, url, _pids),
    ):
        client = connect(ClickHouseSettings(url=url, database="default"))
        database = _fresh_database(client, "bench_heatmap")
        try:
            return _heatmap_bench(
                client,
                database,
                days=days,
                events_per_day=events_per_day,
                repeats=repeats,
                seed=seed,
            )
        finally:
            if not keep_database:
                client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
            client.close()


def _heatmap_bench(
    client: Client, database: str, *, days: int, events_per_day: int, repeats: int, seed: int
) -> dict[str, Any]:
    history = simulate_btc(days, events_per_day, seed)
    store = Store(client, database)
    started = time.perf_counter()
    for lo in range(0, history.count, 200_000):
        store.insert(history.table_rows(lo, lo + 200_000))
    load_s = time.perf_counter() - started
    # A month of history has long been merged by background merges; get there now.
    client.command(f"OPTIMIZE TABLE {database}.liquidations_1m FINAL")
    count_sql = f"SELECT count() FROM {database}.liquidations_1m"  # noqa: S608 (our own name)
    aggregate_rows = _count(client, count_sql)
    params = {"asset": "BTC", "start": START_MS // 1000, "end": (START_MS + days * DAY_MS) // 1000}
    query = HEATMAP_QUERY.format(db=database)
    timings, server_ms, cells = [], [], 0
    client.query(query, parameters=params)  # warm-up: caches, like a dashboard refresh
    for _ in range(repeats):
        t0 = time.perf_counter()
        answer = client.query(query, parameters=params)
        timings.append((time.perf_counter() - t0) * 1000)
        cells = len(answer.result_rows)
        elapsed = answer.summary.get("elapsed_ns") if answer.summary else None
        if elapsed is not None:
            server_ms.append(int(elapsed) / 1e6)
    median = statistics.median(timings)
    result: dict[str, Any] = {
        "days": days,
        "liquidations": history.count,
        "aggregate_rows": aggregate_rows,
        "load_seconds": round(load_s, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "heatmap_cells": cells,
        "query_ms_median": round(median, 1),
        "query_ms_max": round(max(timings), 1),
        "server_ms_median": round(statistics.median(server_ms), 1) if server_ms else None,
        "target_ms": HEATMAP_MS_TARGET,
        "ok": median < HEATMAP_MS_TARGET,
    }
    result["report"] = (
        f"heatmap query: {days} days of BTC, {history.count:,} liquidations from every venue, "
        f"{aggregate_rows:,} 1-minute aggregate rows -> {cells:,} cells (hour x 0.5 % band x "
        f"side)\n  median {median:.0f} ms, max {max(timings):.0f} ms over {repeats} runs "
        f"(server {result['server_ms_median']} ms); target < {HEATMAP_MS_TARGET:.0f} ms: "
        + ("met" if result["ok"] else "NOT met")
    )
    return result
