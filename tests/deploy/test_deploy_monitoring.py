"""Metrics contract, Grafana dashboard and PrometheusRule: every query is parsed or executed.

PromQL goes through Prometheus's own parser (promql-check); the ClickHouse panels run against a
real ClickHouse server holding tables built from deploy/tables.yaml and a few seeded rows.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import clickhouse_connect
import pytest
import yaml

from sinks.clickhouse.migrate import migrate
from tests.deploy.deploy_helpers import DASHBOARD_FILE, REPO, TABLES_FILE, Manifest, by_kind

PromqlCheck = Callable[[Sequence[str]], list[dict[str, Any]]]

CONTRACT_METRICS = {
    "liqwatch_producer_frames_total",
    "liqwatch_producer_events_total",
    "liqwatch_producer_parse_errors_total",
    "liqwatch_producer_reconnects_total",
    "liqwatch_producer_staleness_seconds",
    "liqwatch_producer_delivery_errors_total",
    "liqwatch_producer_produce_latency_seconds",
    "liqwatch_worker_events_total",
    "liqwatch_worker_envelopes_total",
    "liqwatch_worker_alerts_total",
    "liqwatch_worker_signals_total",
    "liqwatch_worker_process_seconds",
    "liqwatch_worker_venue_stale",
    "liqwatch_sink_rows_total",
    "liqwatch_sink_batch_seconds",
    "liqwatch_sink_consumer_lag",
    "liqwatch_sink_insert_failures_total",
    "liqwatch_sink_buffer_rows",
    "liqwatch_alerter_deliveries_total",
    "liqwatch_alerter_delivery_seconds",
    "liqwatch_alerter_queue_depth",
    "liqwatch_alerter_retries_total",
    "liqwatch_dlq_messages_total",
}
CONTRACT_TABLES = {
    "liquidations",
    "open_interest",
    "mark_price",
    "heatmap",
    "signals",
    "alerts",
    "alert_updates",
    "alert_outcomes",
    "deliveries",
    "dead_letters",
    "liquidations_1m",
    "schema_migrations",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
BUILTIN_METRICS = {"up"}  # Prometheus' own per-target series
GRAFANA_PROMQL_VARS = {"$__rate_interval": "5m", "$venue": ".*"}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD_FILE.read_text()))


def targets_of(kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == kind:
                yield panel["title"], target


# --- the metrics and tables contracts -------------------------------------------------------


def test_metrics_file_is_the_service_contract(metrics_spec: dict[str, dict[str, Any]]) -> None:
    assert set(metrics_spec) >= CONTRACT_METRICS  # plus every other registered metric
    for name, metric in metrics_spec.items():
        assert re.fullmatch(r"liqwatch_[a-z0-9_]+", name)
        assert metric["help"].strip(), name
        assert len(set(metric["labels"])) == len(metric["labels"]), name
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", label) for label in metric["labels"])
        if metric["type"] == "counter":
            assert name.endswith("_total"), name
        elif metric["type"] == "histogram":
            assert name.endswith(("_seconds", "_bytes")), name
        else:
            assert metric["type"] == "gauge", name
            assert not name.endswith("_total"), name
        if metric["component"] != "shared":
            assert name.startswith(f"liqwatch_{metric['component']}_"), name


def test_tables_file_is_the_storage_contract(tables_spec: dict[str, Any]) -> None:
    assert set(tables_spec) >= CONTRACT_TABLES
    assert set(tables_spec["liquidations_1m"]["columns"]) >= {
        "asset",
        "venue",
        "side",
        "bucket",
        "ts_minute",
        "notional_usd",
        "qty",
        "events",
    }
    for name, table in tables_spec.items():
        assert set(table.get("computed", [])) <= set(table["columns"]), name


# --- PromQL: dashboard and alert rules -------------------------------------------------------


def _check_promql(
    exprs: Sequence[str], check: PromqlCheck, metrics_spec: dict[str, dict[str, Any]]
) -> set[str]:
    """Parse every expression; return the contract metrics they use."""
    used: set[str] = set()
    for result in check(exprs):
        assert "error" not in result, result
        assert result["metrics"], f"selects no metric: {result['expr']}"
        for name in result["metrics"]:
            if name in BUILTIN_METRICS:
                continue
            base = name
            if name.endswith(HISTOGRAM_SUFFIXES):
                base = name.rsplit("_", 1)[0]
                assert metrics_spec.get(base, {}).get("type") == "histogram", name
            assert base in metrics_spec, f"{name} is not in deploy/metrics.yaml"
            assert metrics_spec[base]["type"] != "histogram" or base != name, (
                f"histogram {name} used without _bucket/_sum/_count"
            )
            used.add(base)
    return used


def _dashboard_promql() -> list[str]:
    exprs = []
    for title, target in targets_of("prometheus"):
        expr = target["expr"]
        for var, value in GRAFANA_PROMQL_VARS.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"unknown Grafana variable in {title!r}: {expr}"
        exprs.append(expr)
    return exprs


def _rules(manifests: Sequence[Manifest]) -> list[dict[str, Any]]:
    (rule,) = by_kind(manifests, "PrometheusRule").values()
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_dashboard_promql_parses_and_uses_contract_metrics(
    promql_check: PromqlCheck, metrics_spec: dict[str, dict[str, Any]]
) -> None:
    exprs = _dashboard_promql()
    assert len(exprs) >= 20
    _check_promql(exprs, promql_check, metrics_spec)


def test_promql_check_rejects_broken_queries(promql_check: PromqlCheck) -> None:
    (bad, good) = promql_check(["sum(rate(liqwatch_sink_rows_total[5m])", "up == 0"])
    assert "error" in bad
    assert good["metrics"] == ["up"]


def test_alert_rules_parse_and_cover_the_required_conditions(
    example_manifests: list[Manifest],
    promql_check: PromqlCheck,
    metrics_spec: dict[str, dict[str, Any]],
) -> None:
    rules = _rules(example_manifests)
    used = _check_promql([r["expr"] for r in rules], promql_check, metrics_spec)
    # consumer lag, venue staleness, delivery failures and DLQ growth are required
    assert {
        "liqwatch_sink_consumer_lag",
        "liqwatch_producer_staleness_seconds",
        "liqwatch_worker_venue_stale",
        "liqwatch_alerter_deliveries_total",
        "liqwatch_dlq_messages_total",
    } <= used
    values = yaml.safe_load((REPO / "deploy/helm/examples/values-production.yaml").read_text())
    settings = values["metrics"]["prometheusRule"]["rules"]
    by_name = {r["alert"]: r for r in rules}
    assert by_name["LiqwatchSinkConsumerLag"]["expr"].endswith(
        f"> {settings['consumerLag']['threshold']}"
    )
    assert by_name["LiqwatchProducerStale"]["for"] == settings["producerStale"]["for"]
    assert (
        f"> {settings['deliveryFailures']['ratio']}"
        in by_name["LiqwatchAlertDeliveryFailing"]["expr"]
    )
    for rule in rules:
        assert 'namespace="liqwatch"' in rule["expr"], rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook_url"]


def test_rules_can_be_switched_off(helm: Any) -> None:
    manifests = helm.render(
        sets=[
            "metrics.prometheusRule.enabled=true",
            "metrics.prometheusRule.rules.targetDown.enabled=false",
        ]
    )
    names = {r["alert"] for r in _rules(manifests)}
    assert "LiqwatchTargetDown" not in names
    assert "LiqwatchSinkConsumerLag" in names


def test_every_contract_metric_is_watched(
    example_manifests: list[Manifest],
    promql_check: PromqlCheck,
    metrics_spec: dict[str, dict[str, Any]],
) -> None:
    exprs = _dashboard_promql() + [r["expr"] for r in _rules(example_manifests)]
    assert _check_promql(exprs, promql_check, metrics_spec) >= CONTRACT_METRICS


# --- dashboard structure ----------------------------------------------------------------------


def test_dashboard_layout() -> None:
    board = dashboard()
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    assert board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["prometheus"]["query"] == "prometheus"
    assert variables["clickhouse"]["query"] == "grafana-clickhouse-datasource"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
        if panel["type"] != "row":
            assert panel["description"], panel["title"]
            ds_type = panel["datasource"]["type"]
            assert {t["datasource"]["type"] for t in panel["targets"]} == {ds_type}
    kinds = {p["datasource"]["type"] for p in panels if p["type"] != "row"}
    assert kinds == {"prometheus", "grafana-clickhouse-datasource"}
    assert any(p["type"] == "heatmap" for p in panels)


# --- ClickHouse panels against a real server ----------------------------------------------


def _schema(client: Any, database: str) -> dict[str, Any]:
    """Tables and views of `database` in the shape of deploy/tables.yaml."""
    tables = client.query(
        "SELECT name, engine, sorting_key FROM system.tables WHERE database = {db:String}",
        parameters={"db": database},
    ).result_rows
    columns = client.query(
        "SELECT table, name, type, default_kind FROM system.columns"
        " WHERE database = {db:String} ORDER BY table, position",
        parameters={"db": database},
    ).result_rows
    found: dict[str, Any] = {"tables": {}, "views": {}}
    for name, engine, key in tables:
        section = "views" if engine.endswith("View") else "tables"
        found[section][name] = {"engine": engine, "columns": {}}
        if section == "tables":
            found[section][name]["order_by"] = key
    for table, name, ctype, kind in columns:
        entry = found["views"].get(table) or found["tables"][table]
        entry["columns"][name] = ctype
        if kind in ("ALIAS", "MATERIALIZED"):
            entry.setdefault("computed", []).append(name)
    return found


def _contract_shape() -> dict[str, Any]:
    spec = yaml.safe_load(TABLES_FILE.read_text())
    for section in ("tables", "views"):
        for entry in spec[section].values():
            entry.pop("description")
    return {"tables": spec["tables"], "views": spec["views"]}


def test_tables_file_matches_the_migrations(clickhouse_client: Any, ch_database: str) -> None:
    """`liqwatch db migrate` creates exactly the tables, keys and column types listed."""
    assert migrate(clickhouse_client, ch_database)
    assert _schema(clickhouse_client, ch_database) == _contract_shape()


NOW = "now64(3) - INTERVAL {m} MINUTE"
SEED = [
    (
        "liquidations (venue, symbol, instrument, asset, side, price, qty, notional_usd,"
        " completeness, ts_event, ts_recv, event_id)",
        "SELECT venue, 'BTCUSDT', 'BTC-USDT-PERP', 'BTC', side, price, 2, 2 * price, 'sampled',"
        f" {NOW.format(m='m')}, {NOW.format(m='m')},"
        " concat(venue, side, toString(price), toString(m))"
        " FROM (SELECT arrayJoin(['binance', 'bybit']) AS venue,"
        " arrayJoin(['long', 'short']) AS side,"
        " arrayJoin([64000.5, 64100.5]) AS price, arrayJoin([1, 5, 30]) AS m)",
    ),
    (
        "signals (kind, asset, ts, model, side, band_lo, band_hi, notional_usd, payload)",
        "SELECT 'cascade', 'BTC', now64(3), 'liqwatch-heatmap/1.0', 'long', NULL, NULL, 3e6,"
        ' \'{"cascade_id": "c1", "phase": "ended", "started_at": \''
        ' || toString(toUnixTimestamp64Milli(now64(3)) - 60000) || \', "duration_ms": 60000,'
        ' "total_notional_usd": 3e6, "events": 40, "venues": ["binance", "bybit"],'
        ' "price_start": 64500, "price_now": 63800, "peak_rate_usd_s": 2e5}\'',
    ),
    (
        "alerts (alert_id, kind, subkind, asset, instruments, venues, side, timeframe, severity,"
        " intensity, band_lo, band_hi, notional_usd, price_at_alert, invalidation, created_at,"
        " ts_event, title, summary, model, status, outcome, details)",
        "SELECT 'a1', 'cascade', 'started', 'BTC', ['BTC-USDT-PERP'],"
        " [('binance', 'sampled', false, 0.4)], 'long', '5m', 'critical', 'bright', 63000, 64000,"
        " 2.5e6, 64100, 65000, now64(3), now64(3), 'Long cascade', 'summary',"
        " 'liqwatch-heatmap/1.0', 'ended', (15, 63500, 1.2, 0.3, true), map('k', 1.0)",
    ),
    (
        "alert_outcomes (alert_id, horizon_min, price_after, max_favourable_pct,"
        " max_adverse_pct, hit, computed_at)",
        "SELECT 'a1', 15, 63500, 1.2, 0.3, true, now64(3)",
    ),
    (
        "dead_letters (source, venue, channel, reason, raw, ts_recv)",
        "SELECT 'producer/parse', 'okx', 'liquidation-orders', 'bad side', '{}', now64(3)",
    ),
    (
        "deliveries (alert_id, update_seq, route, target, status, attempts, error, ts)",
        "SELECT 'a1', 0, 'desk', 'tgram://api.telegram.org', 'sent', 1, '', now64(3)",
    ),
]


@pytest.fixture(scope="module")
def clickhouse(clickhouse_server: Any) -> Iterator[Any]:
    """The migrated schema on the shared test server, with a few rows of every kind.

    Module-scoped: the panel queries only read, so one migrated database serves them all.
    """
    clickhouse_server.ensure_started()
    database = f"test_dash_{uuid.uuid4().hex[:10]}"
    client = clickhouse_connect.get_client(host=clickhouse_server.host, port=clickhouse_server.port)
    try:
        migrate(client, database)
        for target, select in SEED:
            client.command(f"INSERT INTO {database}.{target} {select}")
        client.close()
        client = clickhouse_connect.get_client(
            host=clickhouse_server.host, port=clickhouse_server.port, database=database
        )
        yield client
    finally:
        client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        client.close()


def expand_grafana_sql(sql: str, now_s: int, interval_s: int = 60) -> str:
    """The grafana-clickhouse-datasource macros, expanded as the plugin does."""
    start, end = now_s - 6 * 3600, now_s + 3600
    replacements = [
        (
            r"\$__timeFilter_ms\((\w+)\)",
            rf"\1 >= fromUnixTimestamp64Milli({start * 1000})"
            rf" AND \1 <= fromUnixTimestamp64Milli({end * 1000})",
        ),
        (r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime({start}) AND \1 <= toDateTime({end})"),
        (
            r"\$__timeInterval_ms\((\w+)\)",
            rf"toStartOfInterval(toDateTime64(\1, 3), INTERVAL {interval_s * 1000} millisecond)",
        ),
        (
            r"\$__timeInterval\((\w+)\)",
            rf"toStartOfInterval(toDateTime(\1), INTERVAL {interval_s} second)",
        ),
        (r"\$\{asset\}", "BTC"),
    ]
    for pattern, replacement in replacements:
        sql = re.sub(pattern, replacement, sql)
    assert "$" not in sql, f"unexpanded macro or variable: {sql}"
    return sql


def _clickhouse_queries() -> list[tuple[str, str]]:
    queries = [(title, t["rawSql"]) for title, t in targets_of("grafana-clickhouse-datasource")]
    for variable in dashboard()["templating"]["list"]:
        if variable.get("datasource", {}).get("type") == "grafana-clickhouse-datasource":
            queries.append((f"variable {variable['name']}", variable["query"]))
    return queries


def test_clickhouse_panels_read_only_contract_tables(tables_spec: dict[str, Any]) -> None:
    readable = set(tables_spec) | set(yaml.safe_load(TABLES_FILE.read_text())["views"])
    queries = _clickhouse_queries()
    assert len(queries) >= 8
    read: set[str] = set()
    for title, sql in queries:
        tables = set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_0-9]+)", sql, flags=re.IGNORECASE))
        assert tables, title
        assert tables <= readable, f"{title}: {tables - readable}"
        read |= tables
    assert {"liquidations", "liquidations_1m", "alerts", "alert_outcomes"} <= read


@pytest.mark.parametrize(
    ("title", "sql"), _clickhouse_queries(), ids=[t for t, _ in _clickhouse_queries()]
)
def test_clickhouse_panel_query_runs_and_returns_rows(
    clickhouse: Any, title: str, sql: str
) -> None:
    result = clickhouse.query(expand_grafana_sql(sql, int(time.time())))
    assert result.result_rows, f"{title} returned nothing from the seeded tables"
    if title.startswith("Liquidation heatmap"):
        # two seeded prices, 100 apart: two 10 bp buckets, each 2 venues x 2 sides x 2 qty
        assert result.column_names == ("time", "price", "notional_usd")
        assert len({row[1] for row in result.result_rows}) == 2
        assert len({row[0] for row in result.result_rows}) == 3
