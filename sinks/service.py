"""``liqwatch sink``: every liqwatch topic into ClickHouse, in batches, offsets after inserts.

Run ``python -m sinks.service`` (settings from ``LIQWATCH_SINK_*``, ``LIQWATCH_KAFKA_*``,
``LIQWATCH_CLICKHOUSE_*``, ``LIQWATCH_METRICS_PORT``); SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
import time
from types import FrameType

from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, Producer
from prometheus_client import CollectorRegistry

from liqwatch.observability import HealthServer
from liqwatch.topics import Topics
from sinks.batch import topic_roles
from sinks.clickhouse.connect import connect, redact
from sinks.clickhouse.migrate import SchemaTooNewError, migrate
from sinks.clickhouse.store import Store
from sinks.loop import SinkLoop, StopFlag, is_alive, is_ready
from sinks.metrics import SinkMetrics
from sinks.settings import SinkSettings
from sinks.writer import BatchWriter, ClickHouseHealth

log = logging.getLogger(__name__)


def consumer_config(settings: SinkSettings) -> dict[str, object]:
    return {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "group.id": settings.group_id,
        "client.id": f"{settings.kafka.client_id}-sink",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # Eager rebalancing: on revoke the loop stores and commits everything it holds.
        "partition.assignment.strategy": "range",
        "session.timeout.ms": settings.session_timeout_ms,
        "queued.max.messages.kbytes": settings.fetch_queue_kbytes,
        "logger": logging.getLogger("sinks.kafka"),
    }


def producer_config(settings: SinkSettings) -> dict[str, object]:
    return {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "client.id": f"{settings.kafka.client_id}-sink-dlq",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "logger": logging.getLogger("sinks.kafka"),
    }


def run_sink(
    settings: SinkSettings,
    stop: threading.Event | asyncio.Event,
    registry: CollectorRegistry | None = None,
) -> None:
    """Consume until ``stop`` is set, then store and commit what is held and return."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = SinkMetrics(registry)
    client = _open_clickhouse(settings, stop)
    if client is None:
        return
    topics = Topics(settings.kafka.topic_prefix)
    health = ClickHouseHealth(up=True)
    metrics.clickhouse_up.set(1)
    # One connection per batch in flight: a clickhouse-connect client runs one request at a time.
    clients = [
        client,
        *(connect(settings.clickhouse) for _ in range(settings.max_inflight_batches - 1)),
    ]
    writers = [
        BatchWriter(
            Store(c, settings.clickhouse.database),
            metrics,
            health,
            settings.group_id,
            retry_initial_s=settings.retry_initial_s,
            retry_max_s=settings.retry_max_s,
        )
        for c in clients
    ]
    loop = SinkLoop(
        settings,
        Consumer(consumer_config(settings)),
        Producer(producer_config(settings)),
        writers,
        metrics,
        roles=topic_roles(topics),
        dlq_topic=topics.dlq,
    )
    server = _health_server(settings, registry, loop)
    log.info(
        "sink: %s -> %s database %s",
        ", ".join(topics.all),
        redact(settings.clickhouse.url),
        settings.clickhouse.database,
    )
    try:
        loop.run(stop)
    finally:
        server.stop()
        for c in clients:
            c.close()


def _open_clickhouse(settings: SinkSettings, stop: StopFlag) -> Client | None:
    """Connect (and migrate if configured), retrying while ClickHouse is not up yet."""
    delay = settings.retry_initial_s
    while not stop.is_set():
        try:
            client = connect(settings.clickhouse, connect_timeout=5.0)
            if settings.migrate_on_start:
                migrate(client, settings.clickhouse.database, settings.retention)
            return client
        except SchemaTooNewError:
            raise
        except Exception as exc:
            log.warning("ClickHouse not ready (%s); retrying in %.1fs", exc, delay)
        _sleep(stop, delay)
        delay = min(delay * 2, settings.retry_max_s)
    return None


def _sleep(stop: StopFlag, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        time.sleep(min(0.1, seconds))


def _health_server(
    settings: SinkSettings, registry: CollectorRegistry, loop: SinkLoop
) -> HealthServer:
    port = settings.metrics_port
    if port is None:
        port = settings.observability.metrics_port
    return HealthServer(
        registry,
        host=settings.observability.metrics_host,
        port=port,
        live=lambda: is_alive(loop),
        ready=lambda: is_ready(loop),
    ).start()


def main() -> int:
    settings = SinkSettings()
    logging.basicConfig(
        level=settings.observability.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        run_sink(settings, stop)
    except SchemaTooNewError as exc:
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
