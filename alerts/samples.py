"""A deterministic sample cascade (alert, updates, heatmap history) for docs, benchmarks and demos.

Not used by the alerter itself; it exists so every rendered example in docs/alerts.md comes from
the real templates rather than hand-written text.
"""

from __future__ import annotations

import math

import numpy as np

from liqwatch.schema import (
    Alert,
    AlertKind,
    AlertStatus,
    AlertUpdate,
    Completeness,
    HeatmapSnapshot,
    Intensity,
    Severity,
    Side,
    VenueCoverage,
)

T0 = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC
MODEL = "liqwatch-heatmap/1.0"
GRID_ORIGIN = 50_000.0
BUCKET_BP = 10.0


def sample_cascade_alert(created_at: int = T0 + 50 * 60_000) -> Alert:
    return Alert(
        alert_id=f"cascade:BTC:{created_at - 40_000}:long",
        kind=AlertKind.CASCADE,
        subkind="started",
        asset="BTC",
        instruments=["BTC-USDT-PERP", "BTC-USD-INVERSE"],
        venues=[
            VenueCoverage(
                venue="binance", completeness=Completeness.SAMPLED, stale=False, staleness_s=0.4
            ),
            VenueCoverage(
                venue="bybit", completeness=Completeness.COMPLETE, stale=False, staleness_s=0.6
            ),
            VenueCoverage(
                venue="okx", completeness=Completeness.PARTIAL, stale=True, staleness_s=42.0
            ),
        ],
        side=Side.LONG,
        timeframe="1m",
        severity=Severity.CRITICAL,
        intensity=Intensity.BRIGHT,
        band_lo=63_020.0,
        band_hi=63_400.0,
        notional_usd=48_600_000.0,
        oi_usd=8_120_000_000.0,
        oi_delta_1h_usd=-310_000_000.0,
        funding_rate=0.0001,
        price_at_alert=63_310.0,
        invalidation=64_150.0,
        created_at=created_at,
        ts_event=created_at - 1_200,
        title="Long liquidation cascade started",
        summary="$48.6M of longs liquidated in 40 s on 2 live venues; price −1.6% and falling.",
        model=MODEL,
        details={"window_s": 40.0, "peak_rate_usd_s": 2_900_000.0, "events": 812.0},
    )


def sample_updates(alert: Alert) -> list[AlertUpdate]:
    escalated = AlertUpdate(
        alert_id=alert.alert_id,
        seq=1,
        ts=alert.created_at + 60_000,
        status=AlertStatus.OPEN,
        subkind="escalated",
        note="$91.3M liquidated, peak $4.1M/s",
        price=62_640.0,
    )
    ended = AlertUpdate(
        alert_id=alert.alert_id,
        seq=2,
        ts=alert.created_at + 240_000,
        status=AlertStatus.ENDED,
        subkind="ended",
        note="quiet for 60 s; $112M over 4 min on 3 venues",
        price=62_410.0,
    )
    return [escalated, ended]


def sample_snapshots(
    count: int = 120, step_ms: int = 30_000, start: int = T0 + 0, seed: int = 7
) -> list[HeatmapSnapshot]:
    """One hour of BTC: drifting near 64k, then a long cascade down through a bright cluster."""
    rng = np.random.default_rng(seed)
    growth = math.log1p(BUCKET_BP / 10_000)
    snaps = []
    for k in range(count):
        ts = start + k * step_ms
        mark = _mark_path(k, count, rng)
        centre = round(math.log(mark / GRID_ORIGIN) / growth)
        cascade = k > count * 0.7
        snaps.append(
            HeatmapSnapshot(
                asset="BTC",
                ts=ts,
                model=MODEL,
                grid_origin=GRID_ORIGIN,
                bucket_bp=BUCKET_BP,
                mark_price=mark,
                realized_long=_realized(centre, rng, 3.0e6 if cascade else 2.0e5),
                realized_short=_realized(centre, rng, 1.5e5),
                estimated_long=_levels(centre, -1, growth, mark, rng, consumed_below=cascade),
                estimated_short=_levels(centre, +1, growth, mark, rng, consumed_below=False),
            )
        )
    return snaps


def _mark_path(k: int, count: int, rng: np.random.Generator) -> float:
    drift = 64_200.0 + 180.0 * math.sin(k / 9)
    if k > count * 0.7:
        drift -= 1_600.0 * (k - count * 0.7) / (count * 0.3)
    return float(drift + rng.normal(0, 25))


def _realized(centre: int, rng: np.random.Generator, scale: float) -> list[tuple[int, float]]:
    offsets = rng.integers(-3, 4, size=6)
    return [(int(centre + o), float(abs(rng.normal(scale, scale / 3)))) for o in offsets]


def _levels(
    centre: int,
    direction: int,
    growth: float,
    mark: float,
    rng: np.random.Generator,
    *,
    consumed_below: bool,
) -> list[tuple[int, float]]:
    """Estimated levels on one side of price, with one bright cluster at a fixed price."""
    cluster = (63_020.0, 63_400.0) if direction < 0 else (65_200.0, 65_450.0)
    cells = []
    for distance in range(4, 90):
        index = centre + direction * distance
        level = GRID_ORIGIN * math.exp(index * growth)
        weight = 6.0e5 * math.exp(-distance / 25) * rng.random() ** 2
        if cluster[0] <= level <= cluster[1]:
            weight = 8.0e6 * (0.8 + 0.4 * rng.random())
        if consumed_below and direction < 0 and level > mark * 0.999:
            continue  # price crossed these levels: consumed
        cells.append((index, weight))
    return cells
