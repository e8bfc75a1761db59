"""Crash recovery on the real broker: SIGKILL the worker in the middle of a cascade, restart it,
and compare with an uninterrupted worker fed the same envelopes on separate topics.

The uninterrupted worker gets all input before it starts. The crashed one first gets the
envelopes sealed up to the middle of the first BTC cascade, and is killed (SIGKILL) once its
metrics show a cascade alert and a commit; the rest is published before it restarts. So the
kill lands mid-cascade, with the ETH cascade still ahead, however fast the worker is. The
split is by seal time, which is the merge's order, so both workers merge the same sequence.

Both workers are real ``python -m processors.service`` processes on the session's Kafka 4.1
broker. The guarantee checked: the final engine state (the last snapshot per asset in the state
table's changelog) is byte-identical, the same signals and alerts were emitted, nothing is
missing, and the only duplicates are exact re-emissions (same alert id, same content).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from liqwatch import codec
from liqwatch.schema import Alert, AlertUpdate
from liqwatch.topics import Topics
from processors.runner import AssetSnapshot, decode_snapshot
from processors.worker import state_changelog_topic
from tests.worker.kafka_io import WorkerProcess, committed, end_offsets, read_topic, wait_for
from tests.worker.recording import publish, scenario_envelopes

pytestmark = [pytest.mark.servers, pytest.mark.slow]

PARTITIONS = 4
TOPIC_NAMES = ["liquidations", "open_interest", "mark_price", "signals", "alerts", "dlq"]


@dataclass
class Run:
    name: str
    bootstrap: str
    topics: Topics
    app_id: str
    env: dict[str, str]
    log: Path
    worker: WorkerProcess | None = None

    def start(self) -> WorkerProcess:
        self.worker = WorkerProcess(self.env, self.log).start()
        return self.worker

    def committed(self) -> dict[tuple[str, int], int]:
        return committed(self.bootstrap, self.app_id, self.topics.market)

    def ends(self) -> dict[tuple[str, int], int]:
        return {
            (t, p): end
            for t in self.topics.market
            for p, end in end_offsets(self.bootstrap, t).items()
        }

    def done(self) -> bool:
        """Every envelope acked, so covered by a saved snapshot (acks wait for the save)."""
        ends, got = self.ends(), self.committed()
        return all(end == 0 or got.get(tp) == end for tp, end in ends.items())

    def alert_ids(self) -> set[str]:
        return {_decode_alert(r.value)[0] for r in read_topic(self.bootstrap, self.topics.alerts)}

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def _decode_alert(value: bytes) -> tuple[str, Alert | AlertUpdate]:
    msg = codec.alert_decoder.decode(value)
    key = msg.alert_id if isinstance(msg, Alert) else f"{msg.alert_id}#{msg.seq}"
    return key, msg


def _make_run(name: str, make_topics: Callable[..., list[str]], bootstrap: str, tmp: Path) -> Run:
    created = make_topics(TOPIC_NAMES, PARTITIONS)
    prefix = created[0].removesuffix("liquidations")
    app_id = f"{prefix}worker-{name}"
    env = {
        "LIQWATCH_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "LIQWATCH_KAFKA_TOPIC_PREFIX": prefix,
        "LIQWATCH_KAFKA_PARTITIONS": str(PARTITIONS),
        "LIQWATCH_WORKER_APP_ID": app_id,
        "LIQWATCH_WORKER_STATE_DIR": str(tmp / f"state-{name}"),
        "LIQWATCH_WORKER_SESSION_TIMEOUT_S": "6",
        "LIQWATCH_WORKER_SNAPSHOT_INTERVAL_S": "0.5",
        "LIQWATCH_WORKER_COMMIT_INTERVAL_S": "0.5",
    }
    return Run(name, bootstrap, Topics(prefix), app_id, env, tmp / f"worker-{name}.log")


def _latest_snapshots(run: Run) -> dict[str, AssetSnapshot]:
    latest: dict[str, AssetSnapshot] = {}
    for record in read_topic(run.bootstrap, state_changelog_topic(run.app_id)):
        latest[record.key.decode()] = decode_snapshot(record.value)
    return latest


def _offsets_without_prefix(snap: AssetSnapshot, prefix: str) -> dict[str, int]:
    return {k.removeprefix(prefix): v for k, v in snap.offsets.items()}


def _alerts_by_id(run: Run) -> dict[str, list[bytes]]:
    """Every alert record by id (updates by id#seq), each re-encoded canonically."""
    out: dict[str, list[bytes]] = defaultdict(list)
    for record in read_topic(run.bootstrap, run.topics.alerts):
        key, msg = _decode_alert(record.value)
        out[key].append(codec.encode(msg))
    return dict(out)


def test_sigkill_mid_cascade_then_restart_matches_uninterrupted_run(
    kafka_bootstrap: str, kafka_topics: Callable[..., list[str]], tmp_path: Path
) -> None:
    truth, envelopes = scenario_envelopes("demo", tmp_path)
    assert {(lb.kind.value, lb.asset) for lb in truth.labels} >= {
        ("cascade", "BTC"),
        ("cascade", "ETH"),
    }
    ref = _make_run("ref", kafka_topics, kafka_bootstrap, tmp_path)
    crash = _make_run("crash", kafka_topics, kafka_bootstrap, tmp_path)
    first_btc = min(
        (lb for lb in truth.labels if lb.kind.value == "cascade" and lb.asset == "BTC"),
        key=lambda lb: lb.start_ms,
    )
    split_ms = (first_btc.start_ms + first_btc.end_ms) // 2
    before = [e for e in envelopes if e.ts_flush <= split_ms]
    after = [e for e in envelopes if e.ts_flush > split_ms]
    assert before and after
    publish(envelopes, kafka_bootstrap, ref.topics.prefix)
    publish(before, kafka_bootstrap, crash.topics.prefix)
    total = len(envelopes)
    assert sum(ref.ends().values()) == total
    assert sum(crash.ends().values()) == len(before)

    def logs() -> str:
        return f"--- ref\n{ref.tail()}\n--- crash\n{crash.tail()}"

    ref.start()
    first = crash.start()
    try:
        # mid-cascade: a first cascade alert is out and some offsets are committed; watched on
        # the worker's own metrics, cheap enough to poll every 10 ms. Partitions progress
        # independently, so whether BTC's or ETH's comes first depends on the fetches.
        def cascade_out_and_committed() -> bool:
            if first.metric('liqwatch_worker_alerts_total{kind="cascade"}') < 1:
                return False
            return sum(max(o, 0) for o in crash.committed().values()) > 0

        wait_for("a cascade alert and a commit", cascade_out_and_committed, 90, logs, 0.01)
        first.kill()
        time.sleep(1.0)  # requests the worker sent just before (a commit) land meanwhile
        at_kill = sum(max(o, 0) for o in crash.committed().values())
        alerts_at_kill = crash.alert_ids()
        assert 0 < at_kill < total, "the kill must land mid-stream"
        cascades_at_kill = {i.split("-")[1] for i in alerts_at_kill if i.startswith("cascade-")}
        assert len(cascades_at_kill) < 2, "one cascade must still be ahead at the kill"

        publish(after, kafka_bootstrap, crash.topics.prefix)
        assert sum(crash.ends().values()) == total
        second = crash.start()
        wait_for("the restarted worker to finish", crash.done, 90, logs)
        wait_for("the reference worker to finish", ref.done, 60, logs)
        assert second.metric("liqwatch_worker_restores_total") >= 1
        # resumed at the committed offsets: each envelope after them was skipped (the restored
        # snapshot reflects it) or processed, exactly once; nothing before them was re-read
        processed = second.metric("liqwatch_worker_envelopes_total")
        skipped = second.metric("liqwatch_worker_skipped_envelopes_total")
        assert processed + skipped == total - at_kill
        assert 0 < processed < total
        for worker in (second, ref.worker):
            assert worker is not None
            assert worker.metric("liqwatch_worker_merge_forced_releases_total") == 0
        status, body = second.get("/readyz")
        assert status == 200 and body.startswith("ready"), body
    finally:
        for run in (ref, crash):
            if run.worker is not None:
                run.worker.stop()

    # final engine state: identical, asset by asset, byte for byte
    ref_snaps, crash_snaps = _latest_snapshots(ref), _latest_snapshots(crash)
    assert set(ref_snaps) == {"BTC", "ETH"}
    assert set(crash_snaps) == set(ref_snaps)
    for asset, snap in ref_snaps.items():
        other = crash_snaps[asset]
        assert other.engine_state == snap.engine_state, f"{asset} engine state differs"
        assert _offsets_without_prefix(other, crash.topics.prefix) == _offsets_without_prefix(
            snap, ref.topics.prefix
        )

    # alerts: the uninterrupted run has no duplicates; the crashed one only exact re-emissions
    ref_alerts, crash_alerts = _alerts_by_id(ref), _alerts_by_id(crash)
    assert all(len(v) == 1 for v in ref_alerts.values())
    for key, copies in crash_alerts.items():
        assert len(set(copies)) == 1, f"re-emitted {key} with different content"
    assert {k: v[0] for k, v in crash_alerts.items()} == {k: v[0] for k, v in ref_alerts.items()}
    ids = set(ref_alerts)
    assert any(i.startswith("cascade-BTC-long") for i in ids)
    assert any(i.startswith("cascade-ETH-short") for i in ids)

    # signals: the same set (re-emissions are copies)
    ref_signals = {r.value for r in read_topic(kafka_bootstrap, ref.topics.signals)}
    crash_signals = {r.value for r in read_topic(kafka_bootstrap, crash.topics.signals)}
    assert ref_signals and crash_signals == ref_signals
    assert read_topic(kafka_bootstrap, crash.topics.dlq) == []
