"""Dispatcher harness: real rules, real Apprise targets, Delivery records collected in a list."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from alerts.delivery import DeliveryConfig, Dispatcher
from alerts.metrics import AlerterMetrics
from alerts.sender import RetryPolicy
from liqwatch.schema import Delivery, DeliveryStatus
from liqwatch.settings import NotifySettings

FAST_RETRY = RetryPolicy(timeout_s=10.0, max_attempts=3, backoff_base_s=0.05, backoff_max_s=0.2)


@dataclass
class Harness:
    dispatcher: Dispatcher
    registry: CollectorRegistry
    records: list[Delivery] = field(default_factory=list)

    def with_status(self, status: DeliveryStatus) -> list[Delivery]:
        return [r for r in self.records if r.status is status]

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


MakeDispatcher = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_dispatcher(tmp_path: Path) -> AsyncIterator[MakeDispatcher]:
    """Factory: await make(urls, rules=None, config=None, state_dir=None, apprise_config=None)."""
    started: list[Harness] = []

    async def make(
        urls: list[str],
        rules: str | None = None,
        config: DeliveryConfig | None = None,
        state_dir: Path | None = None,
        apprise_config: Path | None = None,
    ) -> Harness:
        rules_file = None
        if rules is not None:
            rules_file = tmp_path / f"rules-{len(started)}.yaml"
            rules_file.write_text(rules)
        notify = NotifySettings(
            notify_urls=[SecretStr(u) for u in urls],
            notify_urls_file=None,
            rules_file=rules_file,
            apprise_config=apprise_config,
        )
        registry = CollectorRegistry()
        records: list[Delivery] = []
        dispatcher = Dispatcher.from_settings(
            notify,
            state_dir or tmp_path / "state",
            records.append,
            AlerterMetrics(registry),
            config or DeliveryConfig(retry=FAST_RETRY),
        )
        await dispatcher.start()
        harness = Harness(dispatcher, registry, records)
        started.append(harness)
        return harness

    yield make
    for harness in started:
        await harness.dispatcher.stop(drain_timeout_s=1.0)
