"""`liqwatch stack ...`: run the local Kafka broker and ClickHouse server in the background.

State (pids, ports, data) lives in one run dir; `up` is idempotent, `down` stops exactly the
processes `up` recorded (pid plus start time, so a recycled pid is never signalled).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from liqwatch.stack._proc import ManagedProcess, ProcessRef, StackError, terminate
from liqwatch.stack.chserver import ClickHouseServer, ping
from liqwatch.stack.kafka import (
    KAFKA_VERSION,
    KafkaBroker,
    broker_answers,
    create_topics,
    fetch_kafka,
    libs_dir,
)

DEFAULT_TOPICS = (
    "liq.liquidations",
    "liq.open_interest",
    "liq.mark_price",
    "liq.signals",
    "liq.alerts",
    "liq.deliveries",
    "liq.dlq",
)
KAFKA = "kafka"
CLICKHOUSE = "clickhouse"


def default_run_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "liqwatch" / "stack"


@dataclass
class RunState:
    """The run dir's state.json: one record per started service."""

    path: Path
    services: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, run_dir: Path) -> RunState:
        path = run_dir / "state.json"
        services = json.loads(path.read_text()) if path.is_file() else {}
        return cls(path, services)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.services, indent=2, sort_keys=True))
        tmp.replace(self.path)  # atomic: a crash never leaves half a state file

    def ref(self, name: str) -> ProcessRef | None:
        record = self.services.get(name)
        return None if record is None else ProcessRef.from_json(record)

    def alive(self, name: str) -> bool:
        ref = self.ref(name)
        return ref is not None and ref.alive()


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group(name="stack")
def stack() -> None:
    """Local Kafka + ClickHouse servers on 127.0.0.1, without docker."""


@stack.command()
@click.option("--version", "version", default=KAFKA_VERSION, show_default=True)
def fetch(version: str) -> None:
    """Download the Kafka broker jars from Maven Central (once; cached)."""
    click.echo(f"Fetching Kafka {version} jars with Maven into {libs_dir(version)} ...")
    started = time.monotonic()
    try:
        libs = fetch_kafka(version)
    except StackError as exc:
        raise _fail(exc) from exc
    click.echo(f"Kafka {version} jars in {libs} ({time.monotonic() - started:.1f}s)")


run_dir_option = click.option(
    "--dir",
    "run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_run_dir,
    show_default="~/.local/share/liqwatch/stack",
    help="Run dir: data, logs and state of the background servers.",
)


@stack.command()
@run_dir_option
@click.option("--kafka-port", default=9092, show_default=True, type=int)
@click.option("--clickhouse-port", default=8123, show_default=True, type=int)
@click.option("--partitions", default=4, show_default=True, type=int, help="Per default topic.")
@click.option("--auto-create-topics/--no-auto-create-topics", default=True, show_default=True)
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait per server.")
def up(
    *,
    run_dir: Path,
    kafka_port: int,
    clickhouse_port: int,
    partitions: int,
    auto_create_topics: bool,
    timeout: float,
) -> None:
    """Start Kafka and ClickHouse in the background and create the default topics."""
    run_dir = run_dir.expanduser().resolve()
    state = RunState.load(run_dir)
    started: list[str] = []
    try:
        bootstrap = _up_kafka(
            state=state,
            run_dir=run_dir,
            port=kafka_port,
            auto_create_topics=auto_create_topics,
            timeout=timeout,
            started=started,
        )
        url = _up_clickhouse(state, run_dir, clickhouse_port, timeout, started)
        create_topics(bootstrap, DEFAULT_TOPICS, partitions, timeout=timeout)
    except StackError as exc:
        # Leave nothing half-up: stop what this invocation started, keep what was running.
        for name in started:
            _stop_service(state, name)
        raise _fail(exc) from exc
    click.echo(f"Kafka bootstrap servers: {bootstrap}")
    click.echo(f"ClickHouse HTTP URL:     {url}")
    click.echo(f"Topics ({partitions} partitions if new): {' '.join(DEFAULT_TOPICS)}")
    click.echo(f"export LIQWATCH_KAFKA_BOOTSTRAP_SERVERS={bootstrap}")
    click.echo(f"export LIQWATCH_CLICKHOUSE_URL={url}")


def _up_kafka(
    *,
    state: RunState,
    run_dir: Path,
    port: int,
    auto_create_topics: bool,
    timeout: float,
    started: list[str],
) -> str:
    if state.alive(KAFKA):
        bootstrap = str(state.services[KAFKA]["bootstrap"])
        click.echo(f"Kafka already running (pid {state.services[KAFKA]['pid']})")
        return bootstrap
    if not (libs_dir() / ".complete").is_file():
        click.echo(f"Fetching Kafka {KAFKA_VERSION} jars with Maven (once)...")
    broker = KafkaBroker(run_dir / KAFKA, port, auto_create_topics=auto_create_topics)
    broker.start(timeout, detach=True)
    state.services[KAFKA] = {
        **_process_record(broker.process),
        "bootstrap": broker.bootstrap,
        "controller_port": broker.controller_port,
        "log": str(broker.process.log_path),
    }
    state.save()
    started.append(KAFKA)
    return broker.bootstrap


def _up_clickhouse(
    state: RunState, run_dir: Path, port: int, timeout: float, started: list[str]
) -> str:
    if state.alive(CLICKHOUSE):
        click.echo(f"ClickHouse already running (pid {state.services[CLICKHOUSE]['pid']})")
        return str(state.services[CLICKHOUSE]["url"])
    server = ClickHouseServer(run_dir / CLICKHOUSE, port)
    server.start(timeout, detach=True)
    state.services[CLICKHOUSE] = {
        **_process_record(server.process),
        "url": server.url,
        "log": str(server.process.log_path),
    }
    state.save()
    started.append(CLICKHOUSE)
    return server.url


def _process_record(process: ManagedProcess) -> dict[str, int]:
    if process.ref is None:
        raise StackError(f"{process.name} has no process after a successful start")
    return process.ref.to_json()


def _stop_service(state: RunState, name: str) -> bool:
    """Stop one recorded service; True if it was running. Forgets it either way."""
    ref = state.ref(name)
    was_running = ref is not None and ref.alive()
    if ref is not None:
        terminate(ref, timeout=30.0)
    state.services.pop(name, None)
    state.save()
    return was_running


@stack.command()
@run_dir_option
def down(run_dir: Path) -> None:
    """Stop the background servers started by `up` (data is kept)."""
    state = RunState.load(run_dir.expanduser().resolve())
    # ClickHouse first: a sink still writing would rather lose Kafka than its database.
    for name in (CLICKHOUSE, KAFKA):
        if name not in state.services:
            click.echo(f"{name}: not started")
            continue
        stopped = _stop_service(state, name)
        click.echo(f"{name}: {'stopped' if stopped else 'was not running'}")


@stack.command()
@run_dir_option
def status(run_dir: Path) -> None:
    """Show which server process is up and whether it answers. Exit code 1 unless both do."""
    state = RunState.load(run_dir.expanduser().resolve())
    healthy = True
    for name in (KAFKA, CLICKHOUSE):
        line, ok = _service_status(state, name)
        click.echo(line)
        healthy = healthy and ok
    if not healthy:
        raise SystemExit(1)


def _service_status(state: RunState, name: str) -> tuple[str, bool]:
    record = state.services.get(name)
    if record is None:
        return f"{name}: not started", False
    endpoint = str(record["bootstrap"] if name == KAFKA else record["url"])
    if not state.alive(name):
        return f"{name}: process {record['pid']} is gone ({endpoint})", False
    reachable = broker_answers(endpoint) if name == KAFKA else ping(endpoint)
    answer = "reachable" if reachable else "NOT reachable"
    return f"{name}: up, pid {record['pid']}, {endpoint} {answer}", reachable
