"""The ``liqwatch`` command line. Every flag has a ``LIQWATCH_*`` environment equivalent.

Commands import their implementation lazily so ``liqwatch --help`` and small commands stay fast.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import click

from liqwatch.bench import WORKER_REPEATS
from liqwatch.settings import default_data_dir

DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="LIQWATCH_DATA_DIR",
    default=default_data_dir,
    show_default="the user's data dir (~/.local/share/liqwatch)",
    help="Where the embedded ClickHouse and the outputs live.",
)
ALERTS_OUT = click.option(
    "--alerts-out",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="LIQWATCH_ALERTS_OUT",
    default=None,
    help="Write alert records as JSON lines here (default: DATA_DIR/alerts.jsonl).",
)
NOTIFY = click.option(
    "--notify",
    "notify",
    multiple=True,
    envvar="LIQWATCH_NOTIFY_URLS",
    help="Apprise URL to deliver alerts to (repeatable; env: space-separated).",
)
RULES = click.option(
    "--rules",
    "rules_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="LIQWATCH_RULES_FILE",
    default=None,
    help="Alert routing rules (YAML).",
)
CLICKHOUSE_URL = click.option(
    "--clickhouse-url",
    envvar="LIQWATCH_CLICKHOUSE_URL",
    default=None,
    help="ClickHouse server (http://host:port); default: the embedded store in DATA_DIR.",
)


def _setup_logging(level: str) -> None:
    from liqwatch.redact import install_redaction  # noqa: PLC0415

    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_redaction()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", envvar="LIQWATCH_LOG_LEVEL", default="WARNING", show_default=True)
@click.version_option(package_name="liqwatch")
def main(log_level: str) -> None:
    """liqwatch: liquidation heatmap, sweep and cascade alerts for crypto derivatives."""
    _setup_logging(log_level)


# --- the embedded runner ------------------------------------------------------------------------


@main.command()
@DATA_DIR
@ALERTS_OUT
@NOTIFY
@RULES
@click.option("--scenario", default="demo", show_default=True, help="Bundled synthetic scenario.")
@click.option("--seed", type=int, default=None, help="Override the scenario's seed.")
def demo(
    data_dir: Path,
    alerts_out: Path | None,
    notify: tuple[str, ...],
    rules_file: Path | None,
    scenario: str,
    seed: int | None,
) -> None:
    """Replay a bundled synthetic cascade scenario through the whole embedded pipeline."""
    from liqwatch.embedded import EmbeddedOptions, run_demo  # noqa: PLC0415

    opts = EmbeddedOptions.build(data_dir, alerts_out, notify, rules_file, speed=None)
    summary = asyncio.run(run_demo(scenario, seed, opts, sys.stdout))
    sys.exit(0 if summary.ok else 1)


@main.command()
@click.argument("recording", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--speed", type=float, default=None, help="Replay at N× real time (default: max).")
@click.option("--kafka", is_flag=True, help="Publish to Kafka instead of the embedded runner.")
@DATA_DIR
@ALERTS_OUT
@NOTIFY
@RULES
def replay(
    recording: Path,
    speed: float | None,
    kafka: bool,
    data_dir: Path,
    alerts_out: Path | None,
    notify: tuple[str, ...],
    rules_file: Path | None,
) -> None:
    """Feed a recording (JSON lines of venue frames) through the pipeline."""
    if kafka:
        from liqwatch.settings import KafkaSettings  # noqa: PLC0415
        from producers.publish import publish_recording  # noqa: PLC0415

        stats = publish_recording(recording, KafkaSettings(), speed=speed)
        click.echo(stats.describe())
        sys.exit(0 if stats.ok else 1)
    from liqwatch.embedded import EmbeddedOptions, run_recording  # noqa: PLC0415

    opts = EmbeddedOptions.build(data_dir, alerts_out, notify, rules_file, speed=speed)
    summary = asyncio.run(run_recording(recording, opts, sys.stdout))
    sys.exit(0 if summary.ok else 1)


@main.command()
@click.option("--venue", required=True, help="binance|binance_coinm|bybit|okx|deribit|bitmex")
@click.option("--channel", default=None, help="Channel, when it cannot be read from the frame.")
def parse(venue: str, channel: str | None) -> None:
    """Read raw venue frames on stdin; write normalized events as JSON lines on stdout."""
    from producers.parse_cli import run_parse  # noqa: PLC0415

    # each bad frame gets exactly one line on stderr from run_parse: no log line repeating it
    logging.getLogger("producers").setLevel(logging.ERROR)
    sys.exit(run_parse(venue, channel, sys.stdin.buffer, sys.stdout, sys.stderr))


@main.command()
@click.argument("query", required=False)
@click.option("-f", "--file", "sql_file", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.option("--write", is_flag=True, help="Allow statements that change data.")
@DATA_DIR
@CLICKHOUSE_URL
def sql(
    query: str | None,
    sql_file: Path | None,
    fmt: str,
    write: bool,
    data_dir: Path,
    clickhouse_url: str | None,
) -> None:
    """Run SQL against the store (embedded in DATA_DIR, or --clickhouse-url)."""
    from liqwatch.store import open_client  # noqa: PLC0415
    from sinks.sql_cli import run_sql  # noqa: PLC0415

    if (query is None) == (sql_file is None):
        raise click.UsageError("give a QUERY or -f FILE")
    text = query if query is not None else Path(str(sql_file)).read_text()
    # a read-only analyst user cannot migrate: only the embedded store is set up on first use
    client, _database = open_client(data_dir, clickhouse_url, migrate_schema=clickhouse_url is None)
    try:
        click.echo(run_sql(client, text, fmt, readonly=not write))  # type: ignore[arg-type]
    except Exception as exc:
        raise click.ClickException(str(exc).strip().splitlines()[0]) from exc


@main.command()
@click.argument("scenario")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--seed", type=int, default=None)
def synth(scenario: str, out: Path, seed: int | None) -> None:
    """Write a synthetic recording (and its ground-truth labels) for a scenario."""
    from liqwatch.scenarios import generate_scenario  # noqa: PLC0415

    truth = generate_scenario(scenario, out, seed)
    click.echo(f"wrote {out} and {out}.labels.json ({len(truth.labels)} labels)")


# --- distributed services -----------------------------------------------------------------------


@main.command()
@click.option(
    "--source",
    default="live",
    show_default=True,
    help="live | replay:FILE | synthetic:SCENARIO",
)
@click.option("--venues", default="binance,bybit,okx", show_default=True)
@click.option("--symbols", default=None, help="Comma-separated symbols or globs (default: all).")
@click.option("--speed", type=float, default=None)
def produce(source: str, venues: str, symbols: str | None, speed: float | None) -> None:
    """Publish normalized events in per-asset envelopes to Kafka."""
    from liqwatch.services import run_produce  # noqa: PLC0415

    sys.exit(run_produce(source, venues, symbols, speed))


@main.command()
@click.option("--venues", default="binance,bybit,okx", show_default=True)
@click.option("--symbols", default=None)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def record(venues: str, symbols: str | None, out: Path) -> None:
    """Record live venue frames to a recording file."""
    from liqwatch.services import run_record  # noqa: PLC0415

    sys.exit(run_record(venues, symbols, out))


@main.command()
def worker() -> None:
    """Run the Faust detection worker."""
    from liqwatch.services import run_worker_service  # noqa: PLC0415

    run_worker_service()


@main.command()
def sink() -> None:
    """Run the ClickHouse sink (batch insert, then commit offsets)."""
    from liqwatch.services import run_sink_service  # noqa: PLC0415

    run_sink_service()


@main.command()
def alerter() -> None:
    """Run the alerter (routing, rendering, delivery through Apprise)."""
    from liqwatch.services import run_alerter_service  # noqa: PLC0415

    run_alerter_service()


@main.group()
def db() -> None:
    """Database administration."""


@db.command("migrate")
@DATA_DIR
@CLICKHOUSE_URL
def db_migrate(data_dir: Path, clickhouse_url: str | None) -> None:
    """Apply the ClickHouse schema migrations (idempotent)."""
    from liqwatch.store import open_client  # noqa: PLC0415
    from sinks.clickhouse.migrate import migrate  # noqa: PLC0415

    client, database = open_client(data_dir, clickhouse_url, migrate_schema=False)
    applied = migrate(client, database)
    click.echo(f"applied migrations: {applied or 'none (up to date)'}")


@main.group()
def topics() -> None:
    """Kafka topic administration."""


@topics.command("create")
def topics_create() -> None:
    """Create the liqwatch topics with their partition counts (idempotent)."""
    from liqwatch.services import create_topics  # noqa: PLC0415

    for name in create_topics():
        click.echo(name)


@main.group()
def alerts() -> None:
    """Alert records."""


@alerts.command("review")
@click.option("--hours", type=float, default=24.0, show_default=True)
@click.option("--limit", type=int, default=50, show_default=True)
@DATA_DIR
@CLICKHOUSE_URL
def alerts_review(hours: float, limit: int, data_dir: Path, clickhouse_url: str | None) -> None:
    """Recent alerts with status and outcome, and the hit rate per kind."""
    from alerts.review import review  # noqa: PLC0415
    from liqwatch.store import open_client  # noqa: PLC0415

    client, database = open_client(data_dir, clickhouse_url, migrate_schema=clickhouse_url is None)
    since_ms = 0 if hours <= 0 else _now_ms() - int(hours * 3_600_000)
    click.echo(review(client, database, since_ms, limit))


@main.group()
def bench() -> None:
    """Benchmarks: each prints its figures next to a baseline measured in the same run."""


@bench.command("parse")
@click.option("--frames", type=int, default=200_000, show_default=True)
def bench_parse(frames: int) -> None:
    """Parser frames/s per venue vs a standard-library json baseline."""
    from producers.bench import run_parse_bench  # noqa: PLC0415

    _print_result(run_parse_bench(frames))


@bench.command("detect")
@click.option("--scenarios", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
def bench_detect(scenarios: Path | None, as_json: bool) -> None:
    """Detection quality on the scenario library: precision, recall, delay, false alarms."""
    from liqwatch.bench.detect import run  # noqa: PLC0415

    run(scenarios, as_json)


@bench.command("model")
def bench_model() -> None:
    """Model backtest: realized notional inside predicted bands vs a uniform baseline."""
    from liqwatch.bench.model import run  # noqa: PLC0415

    run()


@bench.command("engine")
@click.option("--faust/--no-faust", default=True, help="Also measure the Faust worker on Kafka.")
@click.option(
    "--envelope-span-ms",
    type=click.IntRange(min=1),
    default=2_000,
    show_default=True,
    help="Event time one envelope of the worker load may span (the live batcher: 250 ms).",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=WORKER_REPEATS,
    show_default=True,
    help="Worker and naive runs, alternated; the ratio uses the best of each.",
)
def bench_engine(faust: bool, envelope_span_ms: int, repeats: int) -> None:
    """Engine events/s: embedded, and the Faust worker vs a naive per-event agent."""
    from liqwatch.bench.engine import run_embedded  # noqa: PLC0415

    run_embedded()
    if faust:
        from liqwatch.bench.worker import run_worker_bench  # noqa: PLC0415

        run_worker_bench(envelope_span_ms=envelope_span_ms, repeats=repeats)


@bench.command("sink")
def bench_sink() -> None:
    """Sink rows/s vs a raw clickhouse-connect insert; heatmap query latency."""
    from sinks.bench import run_heatmap_query_bench, run_sink_bench  # noqa: PLC0415

    _print_result(run_sink_bench())
    _print_result(run_heatmap_query_bench())


def _print_result(result: Any) -> None:
    if isinstance(result, dict) and "report" in result:
        click.echo(result["report"])


def _now_ms() -> int:
    import time  # noqa: PLC0415

    return int(time.time() * 1000)


def _register_stack() -> None:
    from liqwatch.stack.cli import stack  # noqa: PLC0415

    main.add_command(stack)


_register_stack()


if __name__ == "__main__":
    main()
