"""``liqwatch worker`` as a process: settings from the environment, ``/metrics``, ``/healthz``
and ``/readyz`` (partitions assigned, state recovered), the Faust worker until SIGTERM.

    python -m processors.service
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from liqwatch.observability import HealthServer
from liqwatch.settings import KafkaSettings, ObservabilitySettings
from processors.kafka_admin import MissingTopicsError
from processors.readiness import WorkerReadiness
from processors.settings import WorkerSettings
from processors.worker import run_worker


def serve() -> None:
    obs = ObservabilitySettings()
    registry = CollectorRegistry()
    readiness = WorkerReadiness()
    health = HealthServer(registry, obs.metrics_host, obs.metrics_port, ready=readiness.check)
    health.start()
    try:
        run_worker(KafkaSettings(), WorkerSettings(), registry, readiness, obs.log_level)
    except MissingTopicsError as exc:
        raise SystemExit(f"liqwatch worker: {exc}") from exc
    finally:
        health.stop()


if __name__ == "__main__":
    serve()
