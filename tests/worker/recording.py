"""A synthetic recording turned into envelopes the way a live producer batches them.

The batcher runs on the recording's own receive times (≤ 500 events or 50 ms of recorded time
per envelope), so the envelopes are the same on every run and as fine-grained as live ones;
the real ``KafkaPublisher`` publishes them (key = asset, murmur2 partitioning).
"""

from __future__ import annotations

from pathlib import Path

from liqwatch.scenarios import generate_scenario
from liqwatch.schema import Envelope, GroundTruth
from liqwatch.settings import KafkaSettings
from producers.envelopes import EnvelopeBatcher
from producers.kafka_publisher import KafkaPublisher
from producers.parsing import new_context
from producers.replay import replay_events


def scenario_envelopes(name: str, workdir: Path) -> tuple[GroundTruth, list[Envelope]]:
    path = workdir / f"{name}.jsonl"
    truth = generate_scenario(name, path, None)
    return truth, recording_envelopes(path, f"test:{name}")


def recording_envelopes(path: Path, producer_id: str) -> list[Envelope]:
    batcher = EnvelopeBatcher(producer_id, max_events=500, max_delay_ms=50)
    out: list[Envelope] = []
    last = 0
    for ts_recv, result in replay_events(path, lambda _venue: new_context()):
        assert result.dead_letter is None, result.dead_letter
        out += batcher.flush_due(ts_recv)
        for event in result.events:
            full = batcher.add(event, ts_recv)
            if full is not None:
                out.append(full)
        last = ts_recv
    out += batcher.flush_all(last + 1)
    return out


def publish(envelopes: list[Envelope], bootstrap: str, prefix: str) -> None:
    publisher = KafkaPublisher(KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix))
    for envelope in envelopes:
        publisher.publish(envelope)
        publisher.poll()
    assert publisher.flush(30) == 0
    assert publisher.failed == 0
