"""``liqwatch bench model``: did realized liquidations happen where the model said?

Over the scenario library, every realized liquidation is checked against the estimated-layer
clusters the engine published at least ``HORIZON_S`` earlier (its per-minute ClusterSnapshots):
the share of realized notional that fell inside a predicted band of its side. The baseline
places bands of the same number and widths uniformly at random on the same side of the price
of that moment, within the cluster window (±``window_pct``), averaged over many draws. Both
are printed; the model is worth something only if it beats the baseline clearly.
"""

from __future__ import annotations

import random
import tempfile
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liqwatch.bench.detect import SEEDS_PER_SCENARIO, envelopes, quiet_engine_logs, recordings
from liqwatch.schema import ClusterSnapshot, Layer, Liquidation, MarkPrice, Side

HORIZON_S = 60  # a band counts as a prediction only once it is this old
BASELINE_DRAWS = 200


@dataclass(frozen=True)
class Prediction:
    ts: int
    price: float
    bands: list[tuple[Side, float, float]]


@dataclass
class Tally:
    total_usd: float = 0.0
    model_usd: float = 0.0
    baseline_usd: float = 0.0
    liquidations: int = 0
    with_prediction: int = 0
    coverage: list[float] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.total_usd += other.total_usd
        self.model_usd += other.model_usd
        self.baseline_usd += other.baseline_usd
        self.liquidations += other.liquidations
        self.with_prediction += other.with_prediction
        self.coverage += other.coverage


def predictions(snapshots: list[ClusterSnapshot]) -> dict[str, list[Prediction]]:
    """Per asset, the estimated bands published at each snapshot time."""
    by_key: dict[tuple[str, int], Prediction] = {}
    for s in snapshots:
        if s.layer is not Layer.ESTIMATED:
            continue
        p = by_key.setdefault((s.asset, s.ts), Prediction(s.ts, s.mark_price, []))
        p.bands.append((s.side, s.band_lo, s.band_hi))
    out: dict[str, list[Prediction]] = {}
    for (asset, _), p in sorted(by_key.items(), key=lambda kv: kv[0][1]):
        out.setdefault(asset, []).append(p)
    return out


def inside(bands: list[tuple[Side, float, float]], side: Side, price: float) -> bool:
    return any(s is side and lo <= price <= hi for s, lo, hi in bands)


def uniform_bands(
    p: Prediction, window_pct: float, rng: random.Random
) -> list[tuple[Side, float, float]]:
    """The prediction's bands, each moved to a uniform position on its side of price."""
    out = []
    for side, lo, hi in p.bands:
        width = hi / lo
        if side is Side.LONG:
            low_end, high_end = p.price * (1 - window_pct / 100), p.price / width
        else:
            low_end, high_end = p.price, p.price * (1 + window_pct / 100) / width
        start = rng.uniform(low_end, max(low_end, high_end))
        out.append((side, start, start * width))
    return out


def coverage(p: Prediction, window_pct: float) -> float:
    """Share of the ±window range (both sides) the bands cover, in log-price terms."""
    import math  # noqa: PLC0415

    span = 2 * math.log1p(window_pct / 100)
    return sum(math.log(hi / lo) for _, lo, hi in p.bands) / span


def score(
    liqs: list[tuple[int, str, Side, float, float]],
    preds: dict[str, list[Prediction]],
    window_pct: float,
    seed: int,
) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    times = {a: [p.ts for p in ps] for a, ps in preds.items()}
    for ts, asset, side, price, usd in liqs:
        tally.total_usd += usd
        tally.liquidations += 1
        i = bisect_right(times.get(asset, []), ts - HORIZON_S * 1000) - 1
        if i < 0:
            continue
        p = preds[asset][i]
        tally.with_prediction += 1
        tally.coverage.append(coverage(p, window_pct))
        if inside(p.bands, side, price):
            tally.model_usd += usd
        hits = sum(
            inside(uniform_bands(p, window_pct, rng), side, price) for _ in range(BASELINE_DRAWS)
        )
        tally.baseline_usd += usd * hits / BASELINE_DRAWS
    return tally


def replay_for_model(path: Path) -> tuple[list[tuple[int, str, Side, float, float]], list[Any]]:
    """(liquidations placed where they happened, engine outputs) for one recording.

    A liquidation is placed at its fill price when the venue gives one, else at the asset's
    mark price at that moment (the engine's rule: bankruptcy prices sit beyond the level).
    """
    from processors.engine import Engine, EngineConfig  # noqa: PLC0415

    engine = Engine(EngineConfig.default())
    outputs: list[Any] = []
    mark: dict[str, float] = {}
    liqs: list[tuple[int, str, Side, float, float]] = []
    for events in envelopes(path):
        for e in events:
            if isinstance(e, MarkPrice):
                mark[e.asset] = e.mark_price
            elif isinstance(e, Liquidation):
                placed = e.avg_price or mark.get(e.asset) or e.price
                liqs.append((e.ts_event, e.asset, e.side, placed, e.notional_usd))
        outputs += engine.process(events)
    return liqs, outputs


def run(scenarios_dir: Path | None = None, seeds: int = SEEDS_PER_SCENARIO) -> dict[str, Any]:
    from processors.engine import EngineConfig  # noqa: PLC0415

    window_pct = EngineConfig.default().for_asset("BTC").cluster.window_pct
    total = Tally()
    names = []
    with tempfile.TemporaryDirectory(prefix="liqwatch-model-") as tmp, quiet_engine_logs():
        for k, rec in enumerate(recordings(scenarios_dir, Path(tmp), seeds)):
            liqs, outputs = replay_for_model(rec.path)
            snaps = [o for o in outputs if isinstance(o, ClusterSnapshot)]
            total.add(score(liqs, predictions(snaps), window_pct, seed=k))
            names.append(rec.name)
    result = summary(total, names, window_pct)
    print(result["report"])
    return result


def summary(t: Tally, names: list[str], window_pct: float) -> dict[str, Any]:
    model = t.model_usd / t.total_usd if t.total_usd else 0.0
    baseline = t.baseline_usd / t.total_usd if t.total_usd else 0.0
    cover = sum(t.coverage) / len(t.coverage) if t.coverage else 0.0
    result: dict[str, Any] = {
        "recordings": names,
        "liquidations": t.liquidations,
        "realized_usd": t.total_usd,
        "with_prediction": t.with_prediction,
        "model_share": model,
        "baseline_share": baseline,
        "lift": model / baseline if baseline else None,
        "band_coverage": cover,
        "horizon_s": HORIZON_S,
    }
    lift = f"{model / baseline:.1f}×" if baseline else "n/a"
    result["report"] = (
        f"model backtest: {len(names)} recordings, {t.liquidations:,} realized liquidations "
        f"(${t.total_usd / 1e6:,.1f}M), bands published ≥ {HORIZON_S}s before\n"
        f"  inside the model's estimated bands      {model:6.1%} of realized notional\n"
        f"  inside equally wide uniform bands       {baseline:6.1%}  (baseline, "
        f"{BASELINE_DRAWS} draws within ±{window_pct:g}% of price)\n"
        f"  lift {lift}; the bands cover {cover:.1%} of the ±{window_pct:g}% range on average"
    )
    return result
