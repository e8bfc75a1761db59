"""The worker's processing loop with the real engine, crashed at several points in-process.

The broker test (test_crash_recovery.py) kills a real worker once; this one checks the same
guarantee at several crash points and fetch interleavings quickly. Kafka's part is played
by plain Python: per topic-partition logs, a state table that keeps what was written, a
producer whose sends become durable only on ``flush`` (what was not flushed is lost in the
crash) and offsets committed only from acks, at random moments, like Faust's commit timer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import zlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from liqwatch import codec
from liqwatch.schema import Envelope, EventKind
from processors import pump as pump_module
from processors.engine import Engine, EngineConfig
from processors.flow import Flow, FlowPorts
from processors.merge import PartitionMerge
from processors.metrics import WorkerMetrics
from processors.pump import Ports, Pump
from processors.readiness import WorkerReadiness
from processors.runner import EngineRunner, decode_snapshot
from tests.worker.recording import scenario_envelopes

PARTITIONS = 2
TOPIC = {
    EventKind.MARK_PRICE: "mark_price",
    EventKind.OPEN_INTEREST: "open_interest",
    EventKind.LIQUIDATION: "liquidations",
}
MERGED = ["mark_price", "open_interest", "liquidations"]


@dataclass(frozen=True)
class Msg:
    topic: str
    partition: int
    offset: int
    value: bytes
    headers: list[tuple[str, bytes]] | None = None


@dataclass
class Broker:
    logs: dict[tuple[str, int], list[Msg]]
    table: dict[bytes, bytes] = field(default_factory=dict)
    durable: list[tuple[str, bytes]] = field(default_factory=list)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)


def _logs(envelopes: list[Envelope]) -> dict[tuple[str, int], list[Msg]]:
    logs: dict[tuple[str, int], list[Msg]] = {(t, p): [] for t in MERGED for p in range(PARTITIONS)}
    for env in envelopes:
        tp = (TOPIC[env.kind], zlib.crc32(env.asset.encode()) % PARTITIONS)
        # half with the producer's headers, half without (the body's head is decoded then)
        headers = codec.envelope_headers(env) if env.seq % 2 else None
        logs[tp].append(Msg(tp[0], tp[1], len(logs[tp]), codec.encode(env), headers))
    return logs


class Session:
    """One worker process life: reads from the committed offsets until done or crashed."""

    def __init__(self, broker: Broker, seed: int, max_merge_events: int = 1 << 40) -> None:
        self.broker = broker
        self.rnd = random.Random(seed)
        self.buffer: list[tuple[str, bytes]] = []
        self.registry = CollectorRegistry()
        self.acked: dict[tuple[str, int], int] = {}
        self.next = {tp: broker.committed.get(tp, 0) for tp in broker.logs}  # fetch position
        self.seeks: list[dict[tuple[str, int], int]] = []
        self.paused: set[tuple[str, int]] = set()
        self.pauses = 0
        merge: PartitionMerge[Any] = PartitionMerge(MERGED, max_merge_events)
        ports = Ports(
            send_signal=lambda _k, v: self.buffer.append(("signal", v)),
            send_alert=lambda _k, v: self.buffer.append(("alert", v)),
            send_dead_letter=lambda _k, v: self.buffer.append(("dlq", v)),
            flush=self._flush,
            ack=self._ack,
            caught_up=self._caught_up,
        )
        metrics = WorkerMetrics(self.registry)
        flow_ports = FlowPorts(pause=self._pause, resume=self._resume, seek=self._seek)
        runner = EngineRunner(lambda: Engine(EngineConfig.default()))
        self.pump = Pump(
            runner,
            merge,
            flow=Flow(merge, ports.caught_up, flow_ports, metrics),
            state=broker.table,
            ports=ports,
            metrics=metrics,
            snapshot_interval_s=1e9,  # saves happen where the test says
        )

    def _caught_up(self, topic: str, partition: int) -> bool:
        """As the worker decides it: the merge's next offset against the end of the log."""
        tp = (topic, partition)
        start = self.pump.merge.next_offset(topic, partition)
        start = self.broker.committed.get(tp, 0) if start is None else start
        return start >= len(self.broker.logs[tp])

    async def _pause(self, tps: set[tuple[str, int]]) -> None:
        self.paused |= tps
        self.pauses += 1

    async def _resume(self, tps: set[tuple[str, int]]) -> None:
        self.paused -= tps

    async def _seek(self, positions: dict[tuple[str, int], int]) -> None:
        self.seeks.append(dict(positions))
        self.next.update(positions)

    def start_offsets(self) -> dict[tuple[str, int], int]:
        """What ``StartOffsets.lookup`` finds: the committed offset, or the log's start."""
        return {tp: self.broker.committed.get(tp, 0) for tp in self.broker.logs}

    async def deliver(self, tp: tuple[str, int], count: int) -> None:
        """Faust hands over the next ``count`` records of a topic-partition."""
        for _ in range(count):
            if self.next[tp] < len(self.broker.logs[tp]):
                msg = self.broker.logs[tp][self.next[tp]]
                self.next[tp] += 1
                await self.pump.on_message(msg, msg)

    async def _flush(self) -> None:
        self.broker.durable += self.buffer
        self.buffer = []

    def _ack(self, msg: Msg) -> None:
        tp = (msg.topic, msg.partition)
        assert msg.offset == self.acked.get(tp, self.broker.committed.get(tp, 0))
        self.acked[tp] = msg.offset + 1

    async def run(self, crash_after: int | None) -> None:
        await self.pump.begin(self.start_offsets())  # the state table is recovered
        delivered = 0
        while crash_after is None or delivered < crash_after:
            open_tps = [tp for tp, n in self.next.items() if n < len(self.broker.logs[tp])]
            if not open_tps:
                break
            fetchable = [tp for tp in open_tps if tp not in self.paused]
            assert fetchable, "the merge waits on a paused partition"
            tp = self.rnd.choice(fetchable)
            for _ in range(self.rnd.randint(1, 40)):  # a fetch: a run from one partition
                if tp in self.paused:
                    break  # like aiokafka: what is not handed out yet is fetched again later
                delivered += 1
                await self.deliver(tp, 1)
            if self.rnd.random() < 0.05:
                await self.pump.save_now()
            if self.rnd.random() < 0.05:
                self.broker.committed.update(self.acked)  # Faust's commit timer fired
        if crash_after is None:
            await self.pump.on_tick()
            await self.pump.save_now()
            self.broker.committed.update(self.acked)
        # a crash: whatever was not flushed is gone, and so are uncommitted acks


def _final(broker: Broker) -> tuple[dict[str, bytes], dict[str, bytes], set[bytes]]:
    state = {k.decode(): decode_snapshot(v).engine_state for k, v in broker.table.items()}
    alerts: dict[str, bytes] = {}
    for kind, value in broker.durable:
        if kind == "alert":
            msg = codec.alert_decoder.decode(value)
            key = getattr(msg, "seq", None)
            ident = msg.alert_id if key is None else f"{msg.alert_id}#{key}"
            assert alerts.setdefault(ident, value) == value, f"{ident} re-emitted differently"
    signals = {v for kind, v in broker.durable if kind == "signal"}
    return state, alerts, signals


@pytest.fixture(scope="module")
def envelopes(tmp_path_factory: pytest.TempPathFactory) -> list[Envelope]:
    _truth, envs = scenario_envelopes("demo", tmp_path_factory.mktemp("demo"))
    return envs[:3300]  # the first 11 minutes: through the BTC cascade


def _run(envelopes: list[Envelope], crashes: list[int], seed: int, max_merge: int = 1 << 40) -> Any:
    broker = Broker(_logs(envelopes))
    forced = paused = 0.0

    async def go() -> None:
        nonlocal forced, paused
        for i, at in enumerate([*crashes, None]):
            session = Session(broker, seed + i, max_merge)  # starts at the commits so far
            await session.run(crash_after=at)
            forced += session.pump.merge.forced
            paused += session.pauses

    asyncio.run(go())
    assert forced == 0, "the merge released without waiting: order would depend on timing"
    return _final(broker), paused


def test_crashes_anywhere_end_in_the_uninterrupted_state(envelopes: list[Envelope]) -> None:
    reference, _ = _run(envelopes, [], seed=1)
    state, alerts, signals = reference
    assert set(state) == {"BTC", "ETH"}
    assert any(a.startswith("cascade-BTC-long") for a in alerts)
    assert signals
    n = len(envelopes)
    for seed, crashes in [(2, [n // 3]), (3, [n // 5, n // 2]), (4, [n - 7])]:
        assert _run(envelopes, crashes, seed)[0] == reference, f"crashes at {crashes}"
    # a tight merge bound: the partitions that run ahead are paused, and resumed
    paused_run, pauses = _run(envelopes, [n // 2], seed=5, max_merge=150)
    assert pauses > 0
    assert paused_run == reference


def test_a_snapshot_that_cannot_be_restored_is_reported_and_the_asset_starts_over(
    envelopes: list[Envelope],
) -> None:
    broker = Broker(_logs(envelopes[:300]))
    broker.table[b"BTC"] = b"\x93not a snapshot"
    session = Session(broker, seed=5)
    asyncio.run(session.run(crash_after=None))
    dead = [codec.dead_letter_decoder.decode(v) for kind, v in broker.durable if kind == "dlq"]
    assert [d.reason.split(":")[0] for d in dead] == ["snapshot not restorable for BTC"]
    assert session.registry.get_sample_value("liqwatch_worker_restore_failures_total") == 1
    assert decode_snapshot(broker.table[b"BTC"]).offsets  # saved again, from empty state


def _crashed_with_and_without_commits(envelopes: list[Envelope]) -> Broker:
    """A broker after a crash that left some partitions committed and others not.

    Saves and commits happen at random points of a session: the first seed (in a fixed range)
    whose crash leaves both kinds is taken, so the test does not depend on the input's length.
    """
    for seed in range(7, 47):
        broker = Broker(_logs(envelopes))
        asyncio.run(Session(broker, seed=seed).run(crash_after=len(envelopes) // 3))
        uncommitted = [tp for tp in broker.logs if tp not in broker.committed and broker.logs[tp]]
        if broker.committed and uncommitted:
            return broker
    raise AssertionError("no crash left both committed and uncommitted partitions")


def test_records_faust_hands_over_or_drops_before_recovery_are_read_again(
    envelopes: list[Envelope],
) -> None:
    """The restart hang: before the state table is recovered Faust may hand records over (the
    engine must not see them: their assets are not restored yet) and may fetch and drop others,
    so the consumer's position of a topic-partition with no commit is past records that would
    never come again (Faust rewinds only partitions with a commit > 0)."""
    reference, _ = _run(envelopes, [], seed=1)
    broker = _crashed_with_and_without_commits(envelopes)

    restarted = Session(broker, seed=8)
    starts = restarted.start_offsets()

    async def restart() -> None:
        for tp in broker.logs:  # handed over during recovery
            await restarted.deliver(tp, 3)
        for tp in broker.logs:  # fetched and dropped: the position moved on
            restarted.next[tp] = len(broker.logs[tp])
        await restarted.run(crash_after=None)

    asyncio.run(restart())
    assert _final(broker) == reference
    assert (restarted.registry.get_sample_value("liqwatch_worker_early_messages_total") or 0) > 0
    assert restarted.seeks[0] == starts


def test_a_stalled_merge_warns_says_so_in_readiness_and_reads_again(
    envelopes: list[Envelope], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If records the merge waits for never come (dropped by the consumer after the start),
    the stall is logged at WARNING with what it waits for, shown on /readyz and in a metric,
    and the topic-partition is read again from the offset the merge expects."""
    part = envelopes[:2000]  # into the first liquidations
    reference, _ = _run(part, [], seed=1)
    monkeypatch.setattr(pump_module, "STALL_WARN_S", 0.0)
    monkeypatch.setattr(pump_module, "REWIND_AFTER_S", 0.0)
    broker = Broker(_logs(part))
    session = Session(broker, seed=9)
    readiness = WorkerReadiness()
    readiness.assigned(len(broker.logs))
    readiness.recovered()
    readiness.watch_merge(lambda: session.pump.stalled)
    lost = max(broker.logs, key=lambda tp: (tp[0] == "liquidations", len(broker.logs[tp])))

    async def go() -> tuple[bool, str]:
        await session.pump.begin(session.start_offsets())
        session.next[lost] = len(broker.logs[lost])  # every record of it dropped
        for tp in broker.logs:
            await session.deliver(tp, len(broker.logs[tp]))
        assert session.pump.merge.buffered > 0
        with caplog.at_level(logging.WARNING, logger="processors.pump"):
            await session.pump.on_tick()
        seen = readiness.check()
        await session.deliver(lost, len(broker.logs[lost]))
        await session.run(crash_after=None)
        return seen

    ready, why = asyncio.run(go())
    topic, partition = lost
    assert not ready and f"{topic}:{partition}" in why
    assert any(f"{topic}:{partition}" in r.getMessage() for r in caplog.records)
    assert (session.registry.get_sample_value("liqwatch_worker_rewinds_total") or 0) >= 1
    assert session.pump.stalled == ""
    assert readiness.check()[0]
    assert _final(broker) == reference
