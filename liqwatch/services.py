"""Entry points of the distributed services; each reads its settings from the environment,
serves /metrics, /healthz and /readyz, and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from liqwatch.observability import HealthServer
from liqwatch.schema import Venue
from liqwatch.settings import KafkaSettings, ObservabilitySettings
from liqwatch.topics import Topics

log = logging.getLogger(__name__)

IDLE_TICK_S = 0.005


def parse_venues(venues: str) -> list[Venue]:
    try:
        return [Venue(v.strip()) for v in venues.split(",") if v.strip()]
    except ValueError as exc:
        known = ", ".join(v.value for v in Venue)
        raise SystemExit(f"unknown venue in {venues!r} (known: {known})") from exc


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _health(registry: CollectorRegistry) -> HealthServer:
    obs = ObservabilitySettings()
    return HealthServer(registry, obs.metrics_host, obs.metrics_port).start()


def run_produce(source: str, venues: str, symbols: str | None, speed: float | None) -> int:
    from producers.metrics import ProducerMetrics  # noqa: PLC0415
    from producers.publish import publish_recording  # noqa: PLC0415

    kafka = KafkaSettings()
    registry = CollectorRegistry()
    metrics = ProducerMetrics(registry)
    health = _health(registry)
    try:
        if source.startswith("replay:"):
            path = Path(source.removeprefix("replay:"))
            stats = publish_recording(path, kafka, speed, metrics=metrics)
        elif source.startswith("synthetic:"):
            from liqwatch.scenarios import generate_scenario  # noqa: PLC0415

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "synthetic.jsonl"
                generate_scenario(source.removeprefix("synthetic:"), path, None)
                stats = publish_recording(path, kafka, speed, metrics=metrics)
        elif source == "live":
            return _run_live_produce(parse_venues(venues), symbols, kafka, metrics)
        else:
            raise SystemExit(f"unknown source {source!r}: live | replay:FILE | synthetic:NAME")
    finally:
        health.stop()
    print(stats.describe())
    return 0 if stats.ok else 1


def _run_live_produce(
    venues: list[Venue], symbols: str | None, kafka: KafkaSettings, metrics: Any
) -> int:
    from producers.live.runner import run_live  # noqa: PLC0415
    from producers.publish import FramePublisher, metered_publisher  # noqa: PLC0415

    name = f"live:{','.join(venues)}"
    frames = FramePublisher(metered_publisher(kafka, metrics), name, metrics)

    async def flush_when_idle(stop: asyncio.Event) -> None:
        # a quiet market pays no batching delay: whatever is pending goes out as soon as the
        # sockets have nothing more for us (checked every IDLE_TICK_S)
        seen = frames.stats.frames
        while not stop.is_set():
            await asyncio.sleep(IDLE_TICK_S)
            if frames.stats.frames == seen:
                frames.idle()
            seen = frames.stats.frames
            frames.publisher.poll()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await asyncio.gather(
            run_live(venues, _symbols(symbols), frames.on_frame, stop, None, metrics=metrics),
            flush_when_idle(stop),
        )

    asyncio.run(main())
    stats = frames.close()
    return 0 if stats.ok else 1


def _symbols(symbols: str | None) -> list[str] | None:
    return [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None


def run_record(venues: str, symbols: str | None, out: Path) -> int:
    from producers.live.runner import record  # noqa: PLC0415

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await record(parse_venues(venues), _symbols(symbols), out, stop)

    asyncio.run(main())
    return 0


def run_worker_service() -> None:
    from processors.service import serve  # noqa: PLC0415 - readiness: partitions + recovery

    serve()


def run_sink_service() -> None:
    from sinks.service import SinkSettings, run_sink  # noqa: PLC0415

    run_sink(SinkSettings(), _stop_event())


def run_alerter_service() -> None:
    from alerts.service import AlerterSettings, run_alerter  # noqa: PLC0415

    run_alerter(AlerterSettings(), _stop_event())


def create_topics(kafka: KafkaSettings | None = None) -> list[str]:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415
    from confluent_kafka.cimpl import NewTopic  # noqa: PLC0415

    kafka = kafka or KafkaSettings()
    names = Topics(kafka.topic_prefix).all
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    existing = set(admin.list_topics(timeout=15).topics)
    wanted = [
        NewTopic(n, num_partitions=kafka.partitions, replication_factor=-1)
        for n in names
        if n not in existing
    ]
    if wanted:
        for name, future in admin.create_topics(wanted).items():
            future.result(timeout=30)
            log.info("created topic %s", name)
    return names
