"""``liqwatch bench detect``: detection quality on the labelled scenario library.

Every scenario is generated (seeded synthetic market → venue-native frames + ground-truth
labels), replayed through the real parsers in envelopes like the producers send them, and fed to
the engine. Alerts are matched to labels (rules in docs/model.md, "Measuring detection"):
precision, recall, median/p95 delay from the labelled start, false alarms per simulated hour.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liqwatch import codec
from liqwatch.schema import (
    Alert,
    AlertKind,
    AlertUpdate,
    GroundTruth,
    Label,
    LabelKind,
    MarketEvent,
    Signal,
)

Output = Signal | Alert | AlertUpdate
SEEDS_PER_SCENARIO = 3  # the bundled seed and two more: more labels, same scenario shapes
SETTLE_MS = 120_000  # replay time after the scenario's end so cascades can end, etc.

TARGETS = {
    "cascade": {"recall": 0.95, "precision": 0.90, "median_delay_s": 2.0},
    "sweep": {"recall": 0.90, "precision": 0.80},
    "cluster_shift": {"recall": 0.90, "precision": 0.80},
}


# --- scenario recordings ----------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    name: str
    path: Path
    truth: GroundTruth


def recordings(scenarios_dir: Path | None, workdir: Path, seeds: int) -> Iterator[Recording]:
    """Recordings to measure: generated from scenario files, or ready-made ones in a dir.

    ``scenarios_dir`` may hold scenario files (``*.yaml``/``*.json``, generated here) and/or
    recordings (``*.jsonl`` next to ``*.jsonl.labels.json``); None means the bundled library.
    """
    from producers.synthetic import generate, load_scenario, scenario_names  # noqa: PLC0415
    from producers.synthetic.scenario import scenarios_dir as bundled  # noqa: PLC0415

    source = scenarios_dir or bundled()
    if scenarios_dir is None:
        files = [bundled() / f"{n}.yaml" for n in scenario_names()]
    else:
        files = sorted(p for p in source.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        files = [p for p in files if not p.name.endswith(".labels.json")]
        for path in sorted(source.glob("*.jsonl")):
            labels = path.with_name(path.name + ".labels.json")
            if labels.exists():
                truth = codec.ground_truth_decoder.decode(labels.read_bytes())
                yield Recording(path.stem, path, truth)
    for file in files:
        scenario = load_scenario(file)
        for k in range(seeds):
            seeded = scenario if k == 0 else _reseed(scenario, scenario.seed + 1000 * k)
            name = scenario.name if k == 0 else f"{scenario.name}#{seeded.seed}"
            out = workdir / f"{name.replace('#', '_')}.jsonl"
            yield Recording(name, out, generate(seeded, out))


def _reseed(scenario: Any, seed: int) -> Any:
    import msgspec  # noqa: PLC0415

    return msgspec.structs.replace(scenario, seed=seed)


# --- replay ------------------------------------------------------------------------------------


def envelopes(path: Path) -> Iterator[list[MarketEvent]]:
    """The recording's events in envelopes, as the producers batch them (≤ 500 events, 50 ms)."""
    from producers.envelopes import EnvelopeBatcher  # noqa: PLC0415
    from producers.parsing import new_context  # noqa: PLC0415
    from producers.replay import replay_events  # noqa: PLC0415

    batcher = EnvelopeBatcher("bench", max_events=500, max_delay_ms=50)
    for ts_recv, result in replay_events(path, lambda _venue: new_context()):
        for env in batcher.flush_due(ts_recv):
            yield env.events
        for event in result.events:
            full = batcher.add(event, ts_recv)
            if full is not None:
                yield full.events
    for env in batcher.flush_all(1 << 62):
        yield env.events


def replay(path: Path, end_ms: int, engine: Any | None = None) -> list[Output]:
    """Runs a recording through a fresh engine the way the runners do; returns every output."""
    from processors.engine import Engine, EngineConfig  # noqa: PLC0415

    engine = engine or Engine(EngineConfig.default())
    out: list[Output] = []
    clock = 0
    for events in envelopes(path):
        out += engine.process(events)
        newest = max(e.ts_event for e in events)
        if newest > clock:
            clock = newest
            out += engine.advance(clock)
    out += engine.advance(end_ms + SETTLE_MS)
    return out


# --- matching ----------------------------------------------------------------------------------


@dataclass
class Score:
    labels: int = 0
    alerts: int = 0
    matched_labels: int = 0
    matched_alerts: int = 0
    delays_s: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    def add(self, other: Score) -> None:
        self.labels += other.labels
        self.alerts += other.alerts
        self.matched_labels += other.matched_labels
        self.matched_alerts += other.matched_alerts
        self.delays_s += other.delays_s
        self.misses += other.misses
        self.false_alarms += other.false_alarms

    def summary(self, hours: float) -> dict[str, Any]:
        delays = sorted(self.delays_s)
        return {
            "labels": self.labels,
            "alerts": self.alerts,
            "recall": self.matched_labels / self.labels if self.labels else None,
            "precision": self.matched_alerts / self.alerts if self.alerts else None,
            "median_delay_s": statistics.median(delays) if delays else None,
            "p95_delay_s": delays[min(len(delays) - 1, int(0.95 * len(delays)))]
            if delays
            else None,
            "false_alarms_per_hour": (self.alerts - self.matched_alerts) / hours if hours else None,
            "misses": self.misses,
            "false_alarms": self.false_alarms,
        }


Rule = Callable[[Alert, Label], bool]


def overlaps(alert: Alert, label: Label, tolerance_pct: float) -> bool:
    if None in (alert.band_lo, alert.band_hi, label.band_lo, label.band_hi):
        return False
    pad = 1 + tolerance_pct / 100
    a_lo, a_hi = float(alert.band_lo) / pad, float(alert.band_hi) * pad  # type: ignore[arg-type]
    return a_lo <= float(label.band_hi) and float(label.band_lo) <= a_hi  # type: ignore[arg-type]


def cascade_rule(alert: Alert, label: Label) -> bool:
    return label.start_ms - 5_000 <= alert.created_at <= label.end_ms + 10_000


def sweep_rule(alert: Alert, label: Label) -> bool:
    in_time = label.start_ms - 60_000 <= alert.ts_event <= label.end_ms + 60_000
    return in_time and overlaps(alert, label, 0.2)


def shift_rule(alert: Alert, label: Label) -> bool:
    same = label.note.split(" ", 1)[0] == alert.subkind
    in_time = label.start_ms - 120_000 <= alert.created_at <= label.start_ms + 120_000
    return same and in_time and overlaps(alert, label, 0.2)


def approach_rule(alert: Alert, label: Label) -> bool:
    in_time = label.start_ms - 60_000 <= alert.created_at <= label.end_ms
    return in_time and overlaps(alert, label, 0.2)


def match(name: str, alerts: list[Alert], labels: list[Label], rule: Rule) -> Score:
    """One-to-one, earliest alert first: a second alert for one label is a false alarm."""
    score = Score(labels=len(labels), alerts=len(alerts))
    free = list(labels)
    for alert in sorted(alerts, key=lambda a: a.created_at):
        hit = next(
            (
                lab
                for lab in free
                if lab.asset == alert.asset and lab.side == alert.side and rule(alert, lab)
            ),
            None,
        )
        if hit is None:
            score.false_alarms.append(f"{name}: {alert.alert_id} {alert.title}")
            continue
        free.remove(hit)
        score.matched_alerts += 1
        score.matched_labels += 1
        score.delays_s.append((alert.created_at - hit.start_ms) / 1000)
    score.misses += [
        f"{name}: {lab.kind} {lab.asset} {lab.side} at {lab.start_ms} {lab.note}" for lab in free
    ]
    return score


SCORED_SUBKINDS = ("formed", "dissolved")  # the shifts the ground truth labels


def score_recording(rec: Recording, outputs: list[Output]) -> dict[str, Score]:
    alerts = [o for o in outputs if isinstance(o, Alert)]
    labels = rec.truth.labels

    def of(kind: AlertKind) -> list[Alert]:
        return [a for a in alerts if a.kind is kind]

    def lab(kind: LabelKind) -> list[Label]:
        return [x for x in labels if x.kind is kind]

    shifts = [a for a in of(AlertKind.CLUSTER_SHIFT) if a.subkind in SCORED_SUBKINDS]
    return {
        "cascade": match(rec.name, of(AlertKind.CASCADE), lab(LabelKind.CASCADE), cascade_rule),
        "sweep": match(rec.name, of(AlertKind.SWEEP), lab(LabelKind.SWEEP), sweep_rule),
        "cluster_shift": match(rec.name, shifts, lab(LabelKind.CLUSTER_SHIFT), shift_rule),
        "approach": match(rec.name, of(AlertKind.APPROACH), lab(LabelKind.APPROACH), approach_rule),
        "whale_as_cascade": _whales(rec.name, of(AlertKind.CASCADE), lab(LabelKind.WHALE)),
    }


def _whales(name: str, cascades: list[Alert], whales: list[Label]) -> Score:
    """Whale labels that a cascade alert fired on (each one is a false alarm)."""
    score = Score(labels=len(whales))
    for whale in whales:
        near = [
            a
            for a in cascades
            if a.side == whale.side and abs(a.created_at - whale.start_ms) <= 30_000
        ]
        score.false_alarms += [f"{name}: {a.alert_id} on a whale" for a in near]
    return score


# --- the benchmark -----------------------------------------------------------------------------


def run(
    scenarios_dir: Path | None, as_json: bool, seeds: int = SEEDS_PER_SCENARIO
) -> dict[str, Any]:
    totals: dict[str, Score] = {}
    hours = 0.0
    names: list[str] = []
    with tempfile.TemporaryDirectory(prefix="liqwatch-bench-") as tmp:
        for rec in recordings(scenarios_dir, Path(tmp), seeds):
            outputs = replay(rec.path, rec.truth.end_ms)
            hours += (rec.truth.end_ms - rec.truth.start_ms) / 3_600_000
            names.append(rec.name)
            for key, score in score_recording(rec, outputs).items():
                totals.setdefault(key, Score()).add(score)
    result: dict[str, Any] = {
        "scenarios": names,
        "simulated_hours": hours,
        "detectors": {k: s.summary(hours) for k, s in totals.items()},
        "targets": TARGETS,
    }
    result["passed"] = passed(result)
    result["report"] = report(result)
    print(json.dumps(_public(result), indent=2) if as_json else result["report"])
    return result


def passed(result: dict[str, Any]) -> bool:
    for name, target in TARGETS.items():
        got = result["detectors"].get(name, {})
        for metric, bound in target.items():
            value = got.get(metric)
            if value is None:
                return False
            ok = value <= bound if metric.endswith("delay_s") else value >= bound
            if not ok:
                return False
    return True


def _public(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "report"}


def _fmt(value: Any, pattern: str) -> str:
    return "—" if value is None else format(value, pattern)


def report(result: dict[str, Any]) -> str:
    lines = [
        f"detection quality: {len(result['scenarios'])} recordings, "
        f"{result['simulated_hours']:.1f} simulated hours",
        f"{'detector':<16}{'labels':>7}{'alerts':>7}{'recall':>8}{'precision':>10}"
        f"{'median s':>9}{'p95 s':>8}{'FA/h':>7}",
    ]
    for name, s in result["detectors"].items():
        if name == "whale_as_cascade":
            continue
        lines.append(
            f"{name:<16}{s['labels']:>7}{s['alerts']:>7}{_fmt(s['recall'], '.2f'):>8}"
            f"{_fmt(s['precision'], '.2f'):>10}{_fmt(s['median_delay_s'], '.1f'):>9}"
            f"{_fmt(s['p95_delay_s'], '.1f'):>8}{_fmt(s['false_alarms_per_hour'], '.2f'):>7}"
        )
    whales = result["detectors"].get("whale_as_cascade", {})
    lines.append(
        f"whales: {whales.get('labels', 0)} labelled, "
        f"{len(whales.get('false_alarms', []))} reported as cascades"
    )
    lines.append("targets: " + ("met" if result["passed"] else "NOT met"))
    for name in TARGETS:
        s = result["detectors"].get(name, {})
        for miss in s.get("misses", [])[:5]:
            lines.append(f"  missed {name}: {miss}")
        for fa in s.get("false_alarms", [])[:5]:
            lines.append(f"  false {name}: {fa}")
    return "\n".join(lines)
