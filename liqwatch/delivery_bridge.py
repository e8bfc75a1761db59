"""Delivery for the embedded runner: the alerts Dispatcher on the runner's event loop.

Detection only calls ``submit`` (a bounded queue, never blocks); the PNG is rendered lazily by the
dispatcher when a channel takes attachments. Delivery records are kept for the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from alerts.delivery import Dispatcher
from alerts.heatmap_png import render_heatmap_png
from alerts.metrics import AlerterMetrics
from alerts.sender import Attachment
from liqwatch.schema import Alert, AlertUpdate, Delivery, HeatmapSnapshot
from liqwatch.settings import NotifySettings

HEATMAP_WINDOW_MS = 60 * 60_000


class EmbeddedDelivery:
    def __init__(self, dispatcher: Dispatcher, records: list[Delivery]) -> None:
        self.dispatcher = dispatcher
        self.records = records

    @classmethod
    async def start(
        cls, urls: list[SecretStr], rules_file: Path | None, data_dir: Path
    ) -> EmbeddedDelivery:
        notify = NotifySettings(notify_urls=urls, rules_file=rules_file)
        records: list[Delivery] = []
        state_dir = data_dir / "alerter"
        state_dir.mkdir(parents=True, exist_ok=True)
        dispatcher = Dispatcher.from_settings(
            notify, state_dir, records.append, AlerterMetrics(CollectorRegistry())
        )
        await dispatcher.start()
        return cls(dispatcher, records)

    def submit(self, item: Alert | AlertUpdate, heatmaps: Sequence[HeatmapSnapshot]) -> None:
        source = _png_source(item, heatmaps) if isinstance(item, Alert) else None
        self.dispatcher.submit(item, source)

    def take_records(self) -> list[Delivery]:
        taken, self.records[:] = list(self.records), []
        return taken

    async def close(self) -> dict[str, int]:
        await self.dispatcher.stop()
        return dict(Counter(r.status.value for r in self.records))


def _png_source(
    alert: Alert, heatmaps: Sequence[HeatmapSnapshot]
) -> Callable[[], list[Attachment]] | None:
    start = alert.created_at - HEATMAP_WINDOW_MS
    snapshots = [s for s in heatmaps if start <= s.ts <= alert.created_at]
    if not snapshots:
        return None

    def render() -> list[Attachment]:
        name = f"{alert.asset.lower()}-heatmap.png"
        return [Attachment(name, render_heatmap_png(snapshots, alert))]

    return render
