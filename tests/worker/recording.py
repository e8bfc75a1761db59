"""A synthetic recording turned into envelopes the way a live producer batches them.

The batcher runs on the recording's own receive times with the producers' settings
(``producers.replay.replay_envelopes``), so the envelopes are the same on every run and as
fine-grained as live ones; the real ``KafkaPublisher`` publishes them (key = asset, murmur2
partitioning).
"""

from __future__ import annotations

from pathlib import Path

from liqwatch.scenarios import generate_scenario
from liqwatch.schema import Envelope, GroundTruth
from liqwatch.settings import KafkaSettings
from producers.kafka_publisher import KafkaPublisher
from producers.replay import replay_envelopes


def scenario_envelopes(name: str, workdir: Path) -> tuple[GroundTruth, list[Envelope]]:
    path = workdir / f"{name}.jsonl"
    truth = generate_scenario(name, path, None)
    return truth, list(replay_envelopes(path, f"test:{name}"))


def publish(envelopes: list[Envelope], bootstrap: str, prefix: str) -> None:
    publisher = KafkaPublisher(KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix))
    for envelope in envelopes:
        publisher.publish(envelope)
        publisher.poll()
    assert publisher.flush(30) == 0
    assert publisher.failed == 0
