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

__all__ = ["SinkSettings", "main", "run_sink"]

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
        # Envelopes are tens of kB: the 1 MB default brings a dozen per partition per fetch.
        "max.partition.fetch.bytes": settings.fetch_partition_kbytes * 1024,
        "fetch.max.bytes": max(52_428_800, settings.fetch_partition_kbytes * 1024 * 4),
        # When the prefetch queue is full librdkafka stops fetching for this long (1 s by
        # default): while catching up the queue drains in well under that, and the sink sat
        # idle for the rest of the second.
        "fetch.queue.backoff.ms": settings.fetch_queue_backoff_ms,
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
    holder: list[SinkLoop] = []  # filled once ClickHouse answers; probes read it meanwhile
    server = _health_server(settings, registry, holder)
    try:
        clients = _open_clickhouse(settings, stop)
        if clients is None:
            return
        holder.append(_build_loop(settings, clients, metrics))
        log.info(
            "sink: %s -> %s database %s",
            ", ".join(Topics(settings.kafka.topic_prefix).all),
            redact(settings.clickhouse.url),
            settings.clickhouse.database,
        )
        try:
            holder[0].run(stop)
        finally:
            for client in clients:
                client.close()
    finally:
        server.stop()


def _build_loop(settings: SinkSettings, clients: list[Client], metrics: SinkMetrics) -> SinkLoop:
    topics = Topics(settings.kafka.topic_prefix)
    health = ClickHouseHealth(up=True)
    metrics.clickhouse_up.set(1)
    writers = [
        BatchWriter(
            Store(client, settings.clickhouse.database),
            metrics,
            health,
            settings.group_id,
            retry_initial_s=settings.retry_initial_s,
            retry_max_s=settings.retry_max_s,
        )
        for client in clients
    ]
    return SinkLoop(
        settings,
        Consumer(consumer_config(settings)),
        lambda: Producer(producer_config(settings)),
        writers,
        metrics,
        roles=topic_roles(topics),
        dlq_topic=topics.dlq,
    )


def _open_clickhouse(settings: SinkSettings, stop: StopFlag) -> list[Client] | None:
    """One client per batch in flight (a client runs one request at a time), after migrating
    if configured; retried while ClickHouse is not up yet. None if stopped meanwhile."""
    delay = settings.retry_initial_s
    while not stop.is_set():
        clients: list[Client] = []
        try:
            for _ in range(settings.max_inflight_batches):
                clients.append(
                    connect(
                        settings.clickhouse,
                        connect_timeout=5.0,
                        send_receive_timeout=settings.request_timeout_s,
                    )
                )
            if settings.migrate_on_start:
                migrate(clients[0], settings.clickhouse.database, settings.retention)
            return clients
        except SchemaTooNewError:
            _close(clients)
            raise
        except Exception as exc:
            _close(clients)
            log.warning("ClickHouse not ready (%s); retrying in %.1fs", exc, delay)
        _sleep(stop, delay)
        delay = min(delay * 2, settings.retry_max_s)
    return None


def _close(clients: list[Client]) -> None:
    for client in clients:
        client.close()


def _sleep(stop: StopFlag, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        time.sleep(min(0.1, seconds))


def _health_server(
    settings: SinkSettings, registry: CollectorRegistry, holder: list[SinkLoop]
) -> HealthServer:
    port = settings.metrics_port
    if port is None:
        port = settings.observability.metrics_port

    def live() -> tuple[bool, str]:
        return is_alive(holder[0]) if holder else (True, "connecting to ClickHouse")

    def ready() -> tuple[bool, str]:
        return is_ready(holder[0]) if holder else (False, "connecting to ClickHouse")

    return HealthServer(
        registry, host=settings.observability.metrics_host, port=port, live=live, ready=ready
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
