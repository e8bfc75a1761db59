"""The Faust worker: thin wiring of envelopes → EngineRunner → signals/alerts topics.

Acks are manual: an envelope is acked only once a snapshot covering it has been written to the
state table, so Faust never commits an offset the saved state does not reflect. After a crash
the worker resumes at or before the snapshot and skips what the snapshot already contains.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from liqwatch import codec
from liqwatch.schema import Alert, AlertUpdate, Envelope
from liqwatch.settings import KafkaSettings
from liqwatch.topics import Topics
from processors.metrics import WorkerMetrics
from processors.runner import EngineLike, EngineRunner, Output
from processors.settings import WorkerSettings

log = logging.getLogger(__name__)


def default_engine() -> EngineLike:
    from processors.engine import Engine, EngineConfig  # noqa: PLC0415 - heavy, only in workers

    engine: EngineLike = Engine(EngineConfig.default())
    return engine


def build_app(
    kafka: KafkaSettings,
    worker: WorkerSettings,
    registry: CollectorRegistry,
    engine: EngineLike | None = None,
) -> faust.App:
    topics = Topics(kafka.topic_prefix)
    app = faust.App(
        worker.app_id,
        broker=f"kafka://{kafka.bootstrap_servers}",
        store="memory://",
        datadir=str(worker.state_dir),
        topic_partitions=kafka.partitions,
        topic_allow_declare=True,  # Faust creates its changelog and assignor topics
        web_enabled=False,
        broker_session_timeout=worker.session_timeout_s,
        broker_heartbeat_interval=min(3.0, worker.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        # held (unacked) envelopes are covered by the next snapshot: do not wait for them to stop
        stream_wait_empty=False,
    )
    metrics = WorkerMetrics(registry)
    runner = EngineRunner(engine if engine is not None else default_engine())
    state = app.Table(
        "engine_state",
        default=None,
        partitions=kafka.partitions,
        schema=faust.Schema(key_serializer="raw", value_serializer="raw"),
        use_partitioner=True,
    )
    source = app.topic(*topics.market, key_type=bytes, value_type=bytes, value_serializer="raw")
    signals = app.topic(topics.signals, value_serializer="raw", internal=False)
    alerts = app.topic(topics.alerts, value_serializer="raw", internal=False)
    dlq = app.topic(topics.dlq, value_serializer="raw", internal=False)
    wiring = _Wiring(runner, state, metrics, signals, alerts, dlq, worker.snapshot_interval_s)

    @app.agent(source)
    async def process(stream: faust.StreamT[bytes]) -> None:
        manual = stream.noack()
        async for event in manual.events():
            await wiring.on_event(event)
            if wiring.snapshot_due():
                wiring.snapshot()
                for held in wiring.take_held():
                    await manual.ack(held)

    app.liqwatch_runner = runner  # type: ignore[attr-defined]
    return app


class _Wiring:
    def __init__(
        self,
        runner: EngineRunner,
        state: Any,
        metrics: WorkerMetrics,
        signals: Any,
        alerts: Any,
        dlq: Any,
        snapshot_interval_s: float,
    ) -> None:
        self.runner = runner
        self.state = state
        self.metrics = metrics
        self.signals = signals
        self.alerts = alerts
        self.dlq = dlq
        self.snapshot_interval_s = snapshot_interval_s
        self._held: list[Any] = []
        self._last_snapshot = time.monotonic()
        self._restored: set[str] = set()

    async def on_event(self, event: Any) -> None:
        self._held.append(event)
        msg = event.message
        try:
            envelope = codec.envelope_decoder.decode(event.value)
        except (codec.DecodeError, codec.ValidationError) as exc:
            await self._dead_letter(msg.topic, str(exc), event.value)
            return
        self._maybe_restore(envelope.asset)
        if self.runner.already_reflected(envelope.asset, msg.topic, msg.partition, msg.offset):
            self.metrics.skipped.inc()
            return
        await self._process(envelope, msg.topic, msg.partition, msg.offset)

    async def _process(self, envelope: Envelope, topic: str, partition: int, offset: int) -> None:
        started = time.perf_counter()
        outputs = self.runner.handle(envelope, topic, partition, offset)
        self.metrics.process_seconds.observe(time.perf_counter() - started)
        self.metrics.envelopes.inc()
        self.metrics.events.labels(envelope.kind.value).inc(len(envelope.events))
        for out in outputs:
            await self._emit(envelope.asset, out)

    async def _emit(self, asset: str, out: Output) -> None:
        value = codec.encode(out)
        if isinstance(out, Alert | AlertUpdate):
            kind = out.kind.value if isinstance(out, Alert) else "update"
            self.metrics.alerts.labels(kind).inc()
            await self.alerts.send(key=asset.encode(), value=value)
        else:
            self.metrics.signals.labels(type(out).__name__).inc()
            await self.signals.send(key=asset.encode(), value=value)

    async def _dead_letter(self, topic: str, reason: str, raw: bytes) -> None:
        self.metrics.dead_letters.labels("worker").inc()
        dead = codec.encode(
            {
                "source": "worker",
                "venue": "",
                "channel": topic,
                "reason": reason,
                "raw": raw.decode("utf-8", "replace"),
                "ts_recv": int(time.time() * 1000),
            }
        )
        await self.dlq.send(key=b"worker", value=dead)

    def _maybe_restore(self, asset: str) -> None:
        if asset in self._restored:
            return
        self._restored.add(asset)
        saved = self.state.get(asset.encode())
        if saved:
            self.runner.restore(asset, saved)
            log.info("restored engine state for %s", asset)

    def snapshot_due(self) -> bool:
        return time.monotonic() - self._last_snapshot >= self.snapshot_interval_s

    def snapshot(self) -> None:
        for asset, blob in self.runner.take_snapshots().items():
            self.state[asset.encode()] = blob
        self._last_snapshot = time.monotonic()

    def take_held(self) -> list[Any]:
        held, self._held = self._held, []
        return held


def run_worker(kafka: KafkaSettings, worker: WorkerSettings, registry: CollectorRegistry) -> None:
    """Runs the Faust worker until it is stopped (SIGTERM/SIGINT)."""
    app = build_app(kafka, worker, registry)
    faust_worker = faust.Worker(app, loglevel="INFO", quiet=True)
    faust_worker.execute_from_commandline()
