"""Bad input on the real broker: undecodable messages, events the engine rejects and envelopes
mixing assets each become one counted dead letter on ``liq.dlq``; the worker keeps going and
``/readyz`` reports ready once it holds partitions and has recovered its state table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Producer

from liqwatch import codec
from liqwatch.schema import Envelope, EventKind
from liqwatch.topics import Topics
from tests.worker.kafka_io import WorkerProcess, committed, read_topic, wait_for
from tests.worker.recording import publish, scenario_envelopes

pytestmark = [pytest.mark.servers, pytest.mark.slow]


def _bad_envelopes(scenario: list[Envelope]) -> list[Envelope]:
    liq = next(e for e in scenario if e.kind is EventKind.LIQUIDATION and e.asset == "BTC")
    negative = msgspec.structs.replace(liq.events[0], price=-5.0, avg_price=None)
    eth = next(e for e in scenario if e.kind is EventKind.LIQUIDATION and e.asset == "ETH")
    return [
        msgspec.structs.replace(liq, seq=10_001, events=[negative]),
        msgspec.structs.replace(liq, seq=10_002, events=[liq.events[0], eth.events[0]]),
    ]


def test_bad_input_is_dead_lettered_and_counted_and_readiness_follows_the_worker(
    kafka_bootstrap: str, kafka_topics: Callable[..., list[str]], tmp_path: Path
) -> None:
    created = kafka_topics(
        ["liquidations", "open_interest", "mark_price", "signals", "alerts", "dlq"], 2
    )
    topics = Topics(created[0].removesuffix("liquidations"))
    _truth, envelopes = scenario_envelopes("demo", tmp_path)
    good = envelopes[:600]
    publish(good, kafka_bootstrap, topics.prefix)
    publish(_bad_envelopes(envelopes), kafka_bootstrap, topics.prefix)
    raw = Producer({"bootstrap.servers": kafka_bootstrap})
    raw.produce(topics.liquidations, key=b"BTC", value=b'{"kind": "liquidation", "asset": ')
    # a sound head (the merge orders it) around an event that is not one: found on release
    head = codec.encode(msgspec.structs.replace(good[-1], seq=10_003, events=[]))
    raw.produce(topics.liquidations, key=b"BTC", value=head.replace(b"[]", b'[{"type": 1}]'))
    assert raw.flush(10) == 0
    del raw

    app_id = f"{topics.prefix}worker"
    worker = WorkerProcess(
        {
            "LIQWATCH_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "LIQWATCH_KAFKA_TOPIC_PREFIX": topics.prefix,
            "LIQWATCH_KAFKA_PARTITIONS": "2",
            "LIQWATCH_WORKER_APP_ID": app_id,
            "LIQWATCH_WORKER_STATE_DIR": str(tmp_path / "state"),
            "LIQWATCH_WORKER_SESSION_TIMEOUT_S": "6",
            "LIQWATCH_WORKER_SNAPSHOT_INTERVAL_S": "0.5",
            "LIQWATCH_WORKER_COMMIT_INTERVAL_S": "0.5",
        },
        tmp_path / "worker.log",
    ).start()
    try:
        first = wait_for("the health endpoint", lambda: worker.get("/readyz")[0], 30, worker.tail)
        assert first in (200, 503)
        ready = wait_for("readiness", lambda: worker.get("/readyz")[0] == 200, 60, worker.tail)
        assert ready
        total = len(good) + 4

        def all_committed() -> bool:
            return (
                sum(max(o, 0) for o in committed(kafka_bootstrap, app_id, topics.market).values())
                == total
            )

        wait_for("every message acked", all_committed, 60, worker.tail)
        assert worker.running
        assert worker.metric("liqwatch_dlq_messages_total") == 4
        assert worker.metric("liqwatch_worker_envelopes_total") == len(good) + 1
        status, body = worker.get("/readyz")
        assert status == 200 and "source topic-partitions" in body
        # Faust's 1.5 s fetch wait starves busy partitions behind quiet ones: it is lowered
        assert "broker fetch wait: 50 ms (was 1500)" in (tmp_path / "worker.log").read_text()
    finally:
        assert worker.stop() == 0

    dead = [
        codec.dead_letter_decoder.decode(r.value) for r in read_topic(kafka_bootstrap, topics.dlq)
    ]
    reasons = sorted((d.source, d.reason.split(":")[0]) for d in dead)
    assert reasons == [
        ("worker", "bad envelope"),
        ("worker", "bad envelope"),
        ("worker", "envelope for BTC carries events of another asset"),
        ("worker/engine", "bad price"),
    ], reasons
    assert all(d.channel for d in dead) and all(d.raw for d in dead)
    assert any('[{"type": 1}]' in d.raw for d in dead)
    engine_dead = next(d for d in dead if d.source == "worker/engine")
    assert '"price":-5.0' in engine_dead.raw


def test_missing_output_topics_stop_the_worker_at_once_with_a_clear_message(
    kafka_bootstrap: str, kafka_topics: Callable[..., list[str]], tmp_path: Path
) -> None:
    created = kafka_topics(["liquidations", "open_interest", "mark_price"], 2)
    prefix = created[0].removesuffix("liquidations")
    worker = WorkerProcess(
        {
            "LIQWATCH_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "LIQWATCH_KAFKA_TOPIC_PREFIX": prefix,
            "LIQWATCH_WORKER_APP_ID": f"{prefix}worker",
            "LIQWATCH_WORKER_STATE_DIR": str(tmp_path / "state"),
        },
        tmp_path / "worker.log",
    ).start()
    assert worker.proc is not None
    code = worker.proc.wait(timeout=60)
    assert code != 0
    log = worker.log.read_text()
    assert f"missing Kafka topics ['{prefix}signals', '{prefix}alerts', '{prefix}dlq']" in log
    assert "liqwatch topics create" in log
