"""The embedded runner: one process, no servers.

recording → parse (producers) → bounded asyncio queue → engine (processors) → ClickHouse through
the in-process chDB backend (sinks) → alert records, console, Apprise delivery (alerts), PNG.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import SecretStr

from liqwatch import codec
from liqwatch.schema import (
    Alert,
    AlertUpdate,
    DeadLetter,
    HeatmapSnapshot,
    MarketEvent,
    MarkPrice,
    RecordedFrame,
    Signal,
)

BATCH_EVENTS = 512
BATCH_SPAN_MS = 250
STORE_FLUSH_ROWS = 20_000


@dataclass(frozen=True)
class EmbeddedOptions:
    data_dir: Path
    alerts_out: Path
    notify_urls: list[SecretStr]
    rules_file: Path | None
    speed: float | None

    @classmethod
    def build(
        cls,
        data_dir: Path,
        alerts_out: Path | None,
        notify: tuple[str, ...] | list[str],
        rules_file: Path | None,
        speed: float | None,
    ) -> EmbeddedOptions:
        data_dir.mkdir(parents=True, exist_ok=True)
        urls = [SecretStr(u) for u in notify if u.strip()]
        return cls(
            data_dir=data_dir,
            alerts_out=alerts_out or data_dir / "alerts.jsonl",
            notify_urls=urls,
            rules_file=rules_file,
            speed=speed,
        )


@dataclass
class RunSummary:
    frames: int = 0
    events: int = 0
    dead_letters: int = 0
    signals: int = 0
    alerts: list[Alert] = field(default_factory=list)
    updates: int = 0
    outcomes: int = 0
    deliveries: dict[str, int] = field(default_factory=dict)
    pngs: list[Path] = field(default_factory=list)
    elapsed_s: float = 0.0
    ok: bool = True


# --- source: recording → batches of events --------------------------------------------------


def iter_batches(
    path: Path, summary: RunSummary, dead: list[DeadLetter]
) -> Iterator[tuple[int, list[MarketEvent]]]:
    """(ts_recv of the last frame, events) batches, each spanning at most BATCH_SPAN_MS."""
    from producers.base import ParseContext  # noqa: PLC0415
    from producers.instruments import InstrumentBook  # noqa: PLC0415
    from producers.parsing import parse_frame  # noqa: PLC0415
    from producers.publish import frame_bytes  # noqa: PLC0415
    from producers.replay import iter_recording  # noqa: PLC0415

    book = InstrumentBook.default()
    contexts: dict[str, ParseContext] = {}
    batch: list[MarketEvent] = []
    batch_start = 0
    last_recv = 0
    for item in iter_recording(path):
        if isinstance(item, DeadLetter):
            summary.dead_letters += 1
            dead.append(item)
            continue
        assert isinstance(item, RecordedFrame)
        summary.frames += 1
        ctx = contexts.setdefault(item.venue, ParseContext(instruments=book))
        result = parse_frame(item.venue, item.channel, frame_bytes(item.frame), item.ts_recv, ctx)
        if result.dead_letter is not None:
            summary.dead_letters += 1
            dead.append(result.dead_letter)
        if not result.events:
            continue
        if batch and (len(batch) >= BATCH_EVENTS or item.ts_recv - batch_start > BATCH_SPAN_MS):
            yield last_recv, batch
            batch = []
        if not batch:
            batch_start = item.ts_recv
        batch.extend(result.events)
        last_recv = item.ts_recv
    if batch:
        yield last_recv, batch


async def paced(
    batches: Iterator[tuple[int, list[MarketEvent]]], speed: float | None
) -> AsyncIterator[list[MarketEvent]]:
    """Yields batches as fast as possible, or at ``speed``× the recorded pace."""
    first: int | None = None
    started = time.monotonic()
    for ts_recv, batch in batches:
        if speed:
            first = ts_recv if first is None else first
            wait = (ts_recv - first) / 1000 / speed - (time.monotonic() - started)
            if wait > 0:
                await asyncio.sleep(wait)
        yield batch
        await asyncio.sleep(0)


# --- outputs ------------------------------------------------------------------------------------


class Outputs:
    """Where engine outputs go: the store (batched), the alert file, the console, delivery."""

    def __init__(self, store: Any, opts: EmbeddedOptions, out: TextIO, delivery: Any) -> None:
        self.store = store
        self.out = out
        self.delivery = delivery
        self.alerts_file = opts.alerts_out.open("wb")
        self.events: list[MarketEvent] = []
        self.signals: list[Signal] = []
        self.alerts: list[Alert] = []
        self.updates: list[AlertUpdate] = []
        self.dead: list[DeadLetter] = []
        self.heatmaps: dict[str, list[HeatmapSnapshot]] = {}
        self.asset_of: dict[str, str] = {}
        self.outcomes = _outcome_tracker()
        self.outcome_rows: list[tuple[str, Any]] = []
        self.outcomes_written: list[tuple[str, Any]] = []

    def add_events(self, events: list[MarketEvent]) -> None:
        self.events.extend(events)
        for event in events:
            if isinstance(event, MarkPrice):
                for done in self.outcomes.on_mark(
                    event.asset, event.ts_event, event.mark_price, event.venue.value
                ):
                    self.outcome_rows.append((done.alert.alert_id, done.outcome))
        if len(self.events) >= STORE_FLUSH_ROWS:
            self.flush()

    def add_outputs(self, outputs: list[Any], summary: RunSummary) -> None:
        for item in outputs:
            if isinstance(item, Alert):
                if self.outcomes.track(item):
                    done = self.outcomes.catch_up(item.alert_id)
                    self.outcome_rows.extend((d.alert.alert_id, d.outcome) for d in done)
                self.asset_of[item.alert_id] = item.asset
                summary.alerts.append(item)
                self.alerts.append(item)
                self._record(item)
                self.out.write(format_alert(item) + "\n")
            elif isinstance(item, AlertUpdate):
                self.outcomes.note_status(item)
                summary.updates += 1
                self.updates.append(item)
                self._record(item)
                self.out.write(format_update(item) + "\n")
            else:
                summary.signals += 1
                self.signals.append(item)
                if isinstance(item, HeatmapSnapshot):
                    self.heatmaps.setdefault(item.asset, []).append(item)
        if outputs and self.delivery is not None:
            for item in outputs:
                if isinstance(item, Alert | AlertUpdate):
                    asset = self.asset_of.get(item.alert_id, "")
                    self.delivery.submit(item, self.heatmaps.get(asset, []))

    def _record(self, item: Alert | AlertUpdate) -> None:
        self.alerts_file.write(codec.encode_line(item))

    def flush(self) -> None:
        if self.events:
            self.store.write_events(self.events)
            self.events = []
        if self.signals:
            self.store.write_signals(self.signals)
            self.signals = []
        if self.alerts:
            self.store.write_alerts(self.alerts)
            self.alerts = []
        if self.updates:
            self.store.write_alert_updates(self.updates)
            self.updates = []
        if self.dead:
            self.store.write_dead_letters(self.dead)
            self.dead = []
        if self.outcome_rows:
            self.store.write_outcomes(self.outcome_rows)
            self.outcomes_written.extend(self.outcome_rows)
            self.outcome_rows = []
        if self.delivery is not None and (records := self.delivery.take_records()):
            self.store.write_deliveries(records)

    def close(self) -> None:
        self.flush()
        self.alerts_file.close()


def _outcome_tracker() -> Any:
    from alerts.outcomes import OutcomeTracker  # noqa: PLC0415

    return OutcomeTracker()


def _fmt_price(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _clock(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "Z"


def format_alert(alert: Alert) -> str:
    venues = ", ".join(
        f"{v.venue}({v.completeness.value}{', STALE' if v.stale else ''})" for v in alert.venues
    )
    band = (
        f"  band {_fmt_price(alert.band_lo)}–{_fmt_price(alert.band_hi)}"
        if alert.band_lo is not None
        else ""
    )
    return (
        f"[{_clock(alert.ts_event)}] {alert.severity.value.upper():8} {alert.title}\n"
        f"    {alert.summary}\n"
        f"    price {_fmt_price(alert.price_at_alert)}{band}  invalidation "
        f"{_fmt_price(alert.invalidation)}  venues: {venues}  id={alert.alert_id}"
    )


def format_update(update: AlertUpdate) -> str:
    return (
        f"[{_clock(update.ts)}]   ↳ {update.status.value}/{update.subkind}: {update.note} "
        f"(price {_fmt_price(update.price)}, id={update.alert_id})"
    )


# --- the run --------------------------------------------------------------------------------------


async def run_recording(path: Path, opts: EmbeddedOptions, out: TextIO) -> RunSummary:
    from liqwatch.store import open_client  # noqa: PLC0415
    from processors.engine import Engine, EngineConfig  # noqa: PLC0415
    from sinks.clickhouse.store import Store  # noqa: PLC0415

    started = time.monotonic()
    summary = RunSummary()
    client, database = open_client(opts.data_dir, None)
    delivery = await _start_delivery(opts, summary)
    outputs = Outputs(Store(client, database), opts, out, delivery)
    engine = Engine(EngineConfig.default())
    queue: asyncio.Queue[list[MarketEvent] | None] = asyncio.Queue(maxsize=64)

    async def produce() -> None:
        async for batch in paced(iter_batches(path, summary, outputs.dead), opts.speed):
            await queue.put(batch)
        await queue.put(None)

    async def detect() -> None:
        clock = 0
        while (batch := await queue.get()) is not None:
            summary.events += len(batch)
            outputs.add_events(batch)
            results = engine.process(batch)
            newest = max(e.ts_event for e in batch)
            if newest > clock:
                clock = newest
                results.extend(engine.advance(clock))
            outputs.add_outputs(results, summary)

    await asyncio.gather(produce(), detect())
    if delivery is not None:
        summary.deliveries = await delivery.close()
    outputs.close()
    summary.outcomes = len(outputs.outcomes_written)
    summary.pngs = _write_png(outputs.heatmaps, summary.alerts, opts.data_dir)
    summary.elapsed_s = time.monotonic() - started
    _print_summary(summary, opts, database, out)
    return summary


async def run_demo(
    scenario: str, seed: int | None, opts: EmbeddedOptions, out: TextIO
) -> RunSummary:
    from liqwatch.scenarios import generate_scenario  # noqa: PLC0415

    path = opts.data_dir / "recordings" / f"{scenario}.jsonl"
    truth = generate_scenario(scenario, path, seed)
    out.write(
        f"liqwatch demo: scenario {truth.scenario!r} (seed {truth.seed}), "
        f"{len(truth.labels)} labelled episodes, recording {path}\n\n"
    )
    return await run_recording(path, opts, out)


async def _start_delivery(opts: EmbeddedOptions, summary: RunSummary) -> Any:
    if not opts.notify_urls:
        return None
    from liqwatch.delivery_bridge import EmbeddedDelivery  # noqa: PLC0415

    return await EmbeddedDelivery.start(opts.notify_urls, opts.rules_file, opts.data_dir)


_FOCUS_ORDER = ("cascade", "sweep", "approach", "cluster_shift", "key_level", "pressure")


def _focus_alert(alerts: list[Alert], asset: str) -> Alert | None:
    """The alert a trader would look at first: cascades, then sweeps, ..., then by size."""
    mine = [a for a in alerts if a.asset == asset]
    return min(
        mine,
        key=lambda a: (_FOCUS_ORDER.index(a.kind.value), -a.notional_usd),
        default=None,
    )


def _write_png(
    heatmaps: dict[str, list[HeatmapSnapshot]], alerts: list[Alert], data_dir: Path
) -> list[Path]:
    """One heatmap PNG per asset, with its most important alert's band marked."""
    from alerts.heatmap_png import render_heatmap_png  # noqa: PLC0415

    paths = []
    for asset in sorted(heatmaps):
        path = data_dir / f"heatmap_{asset}.png"
        render_heatmap_png(heatmaps[asset], _focus_alert(alerts, asset), path)
        paths.append(path)
    return paths


def _print_summary(summary: RunSummary, opts: EmbeddedOptions, database: str, out: TextIO) -> None:
    store = (opts.data_dir / "clickhouse").resolve()
    lines = [
        "",
        f"done in {summary.elapsed_s:.1f}s: {summary.frames} frames, {summary.events} events, "
        f"{summary.dead_letters} dead letters, {summary.signals} signals, "
        f"{len(summary.alerts)} alerts, {summary.updates} alert updates, "
        f"{summary.outcomes} outcomes",
        f"  ClickHouse (embedded chDB): {store}  database {database!r}",
        '    try: liqwatch sql "SELECT venue, side, count(), round(sum(notional_usd)) '
        + f'FROM {database}.liquidations GROUP BY venue, side" --data-dir {opts.data_dir}',
        f"  alert records (JSON lines): {opts.alerts_out.resolve()}",
        "  heatmap PNG: "
        + (", ".join(str(p.resolve()) for p in summary.pngs) or "none (no snapshots)"),
    ]
    if summary.deliveries:
        lines.append(f"  deliveries: {summary.deliveries}")
    elif not opts.notify_urls:
        lines.append("  deliveries: none configured (--notify URL or LIQWATCH_NOTIFY_URLS)")
    out.write("\n".join(lines) + "\n")
