"""The Faust worker: thin wiring of envelopes → merge → EngineRunner → signal/alert topics.

One task iterates the three market topics' channel (no agent: a stream's per-event work is not
needed) and acks by hand; every message goes to the ``Pump``
(``processors/pump.py``), which merges the topics per partition in a deterministic order,
runs the engine, sends outputs and periodically saves per-asset snapshots to a Faust table
(raw bytes, each asset on its own partition) before acking what they cover. A timer drives
the work that needs no new message (the end of the merge, snapshots when the stream is quiet).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped]
from faust.types import TP
from prometheus_client import CollectorRegistry

from liqwatch.settings import KafkaSettings
from liqwatch.topics import Topics
from processors.flow import Flow, FlowPorts
from processors.kafka_admin import StartOffsets, require_output_topics
from processors.merge import PartitionMerge
from processors.metrics import WorkerMetrics
from processors.pump import Ports, Pump
from processors.readiness import WorkerReadiness
from processors.runner import EngineFactory, EngineRunner
from processors.settings import WorkerSettings

log = logging.getLogger(__name__)

STATE_TABLE = "engine_state"
MAX_POLL_RECORDS = 500
PRODUCER_LINGER_S = 0.005
# Python's default 5 ms: the aiokafka consumer thread takes the GIL from the busy main thread
# that often, and each hand-over costs both. Measured on the stress load, alternated runs:
# worker +2 to +28 %, the naive agent +2 to +13 %. Only a saturated worker waits longer for
# its other threads (consumer, /metrics), by at most this much.
GIL_SWITCH_INTERVAL_S = 0.05


def default_engine_factory(registry: CollectorRegistry, metrics: WorkerMetrics) -> EngineFactory:
    from processors.engine import (  # noqa: PLC0415 - heavy, only in workers
        Engine,
        EngineConfig,
        EngineMetrics,
    )

    # staleness under the worker's name, the one the alert rules use
    engine_metrics = EngineMetrics(registry, venue_stale=metrics.venue_stale)
    config = EngineConfig.default()
    return lambda: Engine(config, engine_metrics)


def state_changelog_topic(app_id: str) -> str:
    """The Kafka topic holding the saved snapshots (key = asset, value = AssetSnapshot)."""
    return f"{app_id}-{STATE_TABLE}-changelog"


class SnapshotTable(faust.Table[bytes, bytes]):
    """The state table; each asset's snapshot goes to its source partition's changelog.

    Source topics are keyed by asset with the same partition count as the changelog, so the
    partition is known from the envelopes. Faust's own choice for ``use_partitioner`` asks the
    producer's partitioner, which raises on a fresh producer that has no metadata for the
    changelog topic yet (the first write after a start).
    """

    partition_of: Callable[[bytes], int | None] = staticmethod(lambda _key: None)

    def partition_for_key(self, key: Any) -> int | None:
        return self.partition_of(key)


def build_app(
    kafka: KafkaSettings,
    worker: WorkerSettings,
    registry: CollectorRegistry,
    new_engine: EngineFactory | None = None,
    readiness: WorkerReadiness | None = None,
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
        broker_commit_interval=worker.commit_interval_s,
        broker_session_timeout=worker.session_timeout_s,
        broker_heartbeat_interval=min(3.0, worker.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=worker.max_fetch_bytes,
        # small batches from Faust: what is in flight when the merge pauses a partition is
        # bounded (measured on the stress load: RSS 322 → 241 MB, same speed)
        broker_max_poll_records=MAX_POLL_RECORDS,
        # held (unacked) envelopes are covered by the next snapshot: do not wait for them to stop
        stream_wait_empty=False,
        # outputs come in bursts (one envelope, several records): one produce request per burst
        # instead of one per record (Faust's default 0 spent ~4% of the worker's CPU in writes)
        producer_linger=PRODUCER_LINGER_S,
    )
    metrics = WorkerMetrics(registry)
    runner = EngineRunner(new_engine or default_engine_factory(registry, metrics))
    state = SnapshotTable(
        app,
        name=STATE_TABLE,
        default=None,
        beacon=app.tables.beacon,
        partitions=kafka.partitions,
        # bytes ⇒ Faust's "raw" serializer for writes *and* changelog recovery
        key_type=bytes,
        value_type=bytes,
        use_partitioner=True,
    )
    app.tables.add(state)
    # on equal seal times, prices first: liquidations are placed against the latest mark
    merged = [topics.mark_price, topics.open_interest, topics.liquidations]
    merge: PartitionMerge[Any] = PartitionMerge(merged, worker.max_merge_events)
    starts = StartOffsets(kafka.bootstrap_servers, worker.app_id)
    ports = _ports(app, topics, merge)
    flow = Flow(merge, ports.caught_up, _flow_ports(app), metrics)
    pump = Pump(
        runner,
        merge,
        flow=flow,
        state=state,
        ports=ports,
        metrics=metrics,
        snapshot_interval_s=worker.snapshot_interval_s,
    )
    state.partition_of = pump.partition_of
    ready = readiness or WorkerReadiness()
    ready.watch_merge(lambda: pump.stalled)
    source = app.topic(*merged, key_type=bytes, value_type=bytes, value_serializer="raw")

    async def process() -> None:
        # the topic's channel itself, not an agent's stream around it: the pump acks by hand
        # and needs none of a stream's per-event work, which cost ~1 µs per event (measured
        # with a no-op engine: 215-266k -> 312-338k events/s). Unlike an agent, a task that
        # raises is not restarted: Faust stops the worker, which restarts from its snapshots
        # (the pump keeps engine errors to the dead-letter topic, so that takes a pump bug).
        async for event in source:
            await pump.on_message(event, event.message)
            # the merge holds the bytes it needs; until the save acks it, the event is only
            # needed for its offset
            event.value = event.message.value = None

    async def tick() -> None:
        await pump.on_tick()

    app.task(process)
    app.timer(interval=worker.tick_interval_s)(tick)
    _connect_rebalance(
        app,
        pump,
        starts=starts,
        ready=ready,
        sources=set(merged),
        fetch_wait_ms=worker.fetch_max_wait_ms,
    )
    app.liqwatch_pump = pump  # type: ignore[attr-defined]
    return app


def _ports(app: faust.App, topics: Topics, merge: PartitionMerge[Any]) -> Ports:
    signals = app.topic(topics.signals, value_serializer="raw", internal=False)
    alerts = app.topic(topics.alerts, value_serializer="raw", internal=False)
    dlq = app.topic(topics.dlq, value_serializer="raw", internal=False)

    def positions(topic: str, partition: int) -> tuple[int | None, int | None]:
        """(next offset the merge expects, the broker's high water mark) as last seen."""
        try:
            high = app.consumer.highwater(TP(topic, partition))
        except (AssertionError, KeyError):  # aiokafka asserts the partition is assigned
            high = None
        return merge.next_offset(topic, partition), high

    def caught_up(topic: str, partition: int) -> bool:
        start, high = positions(topic, partition)
        return high is not None and start is not None and start >= high

    def describe(topic: str, partition: int) -> str:
        start, high = positions(topic, partition)
        return f"(next offset {start}, high water {high})"

    return Ports(
        send_signal=lambda k, v: signals.send_soon(key=k, value=v),
        send_alert=lambda k, v: alerts.send_soon(key=k, value=v),
        send_dead_letter=lambda k, v: dlq.send_soon(key=k, value=v),
        flush=lambda: app.producer.flush(),  # noqa: PLW0108 - the producer is made at start
        ack=lambda event: event.ack(),  # Faust may commit its offset from now on
        caught_up=caught_up,
        describe=describe,
    )


def _flow_ports(app: faust.App) -> FlowPorts:
    """Pause and resume in aiokafka, on Faust's consumer thread (see ``processors/flow.py``)."""

    async def apply(consumer: Any, pairs: set[tuple[str, int]], resume: bool) -> None:
        tps = [TopicPartition(t, p) for t, p in sorted(pairs)]
        (consumer.resume if resume else consumer.pause)(*tps)

    async def change(pairs: set[tuple[str, int]], resume: bool) -> None:
        # private on purpose: Faust has no pause that keeps the records it already fetched
        thread: Any = getattr(app.consumer, "_thread")  # noqa: B009
        await thread.call_thread(apply, thread._ensure_consumer(), pairs, resume)

    async def pause(pairs: set[tuple[str, int]]) -> None:
        await change(pairs, resume=False)

    async def resume(pairs: set[tuple[str, int]]) -> None:
        await change(pairs, resume=True)

    async def seek(positions: dict[tuple[str, int], int]) -> None:
        thread: Any = getattr(app.consumer, "_thread")  # noqa: B009
        # Faust's own seek on the consumer thread: it also resets Faust's read offsets
        await thread.seek_wait({TopicPartition(t, p): o for (t, p), o in positions.items()})

    return FlowPorts(pause=pause, resume=resume, seek=seek)


def _connect_rebalance(
    app: faust.App,
    pump: Pump,
    *,
    starts: StartOffsets,
    ready: WorkerReadiness,
    sources: set[str],
    fetch_wait_ms: int,
) -> None:
    # Faust sends (app, partitions) positionally; with eager rebalancing (aiokafka) every
    # rebalance revokes the whole assignment first, so the pump restarts from the snapshots.
    async def on_revoked(_app: Any, revoked: set[TP], **_: Any) -> None:
        ready.rebalancing()
        await pump.reset({tp.partition for tp in revoked if tp.topic in sources})

    async def on_assigned(_app: Any, assigned: set[TP], **_: Any) -> None:
        ready.assigned(sum(1 for tp in assigned if tp.topic in sources))

    async def on_complete(_app: Any, **_: Any) -> None:
        limit_fetch_wait(app, fetch_wait_ms)
        # the state table is recovered; Faust has not yet rewound the stream partitions
        mine = [(tp.topic, tp.partition) for tp in app.consumer.assignment() if tp.topic in sources]
        await pump.begin(await starts.lookup(mine))
        ready.recovered()

    connect_signal(app.on_partitions_revoked, on_revoked)
    connect_signal(app.on_partitions_assigned, on_assigned)
    connect_signal(app.on_rebalance_complete, on_complete)


def limit_fetch_wait(app: faust.App, wait_ms: int) -> None:
    """Sets the broker's longest wait per fetch, which Faust fixes at 1.5 s.

    Private on purpose: Faust has no setting for it, and aiokafka reads this attribute for each
    fetch request it builds, so a change applies from the next fetch on.
    """
    consumer = getattr(app.consumer, "_thread")._ensure_consumer()  # noqa: B009
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
        if fetcher._fetch_max_wait_ms != wait_ms:
            log.info("broker fetch wait: %d ms (was %d)", wait_ms, fetcher._fetch_max_wait_ms)
            fetcher._fetch_max_wait_ms = wait_ms
    else:
        log.warning("cannot set the fetch wait: aiokafka's Fetcher has changed")


def connect_signal(signal: Any, handler: Callable[..., Awaitable[None]]) -> None:
    """Connects a receiver (mode's handler type cannot express a positional argument)."""
    signal.connect(handler)


def run_worker(
    kafka: KafkaSettings,
    worker: WorkerSettings,
    registry: CollectorRegistry,
    readiness: WorkerReadiness | None = None,
    loglevel: str = "INFO",
) -> None:
    """Runs the Faust worker until it is stopped (SIGTERM/SIGINT).

    Pass the same ``readiness`` to the health server (``HealthServer(..., ready=readiness.check)``)
    so ``/readyz`` says whether partitions are assigned and the state table is recovered.
    """
    require_output_topics(kafka)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    app = build_app(kafka, worker, registry, readiness=readiness)
    faust_worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    faust_worker.execute_from_commandline()
