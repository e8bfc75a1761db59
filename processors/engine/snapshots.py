"""Periodic snapshots: heatmap columns and the current clusters, for storage and charts."""

from __future__ import annotations

import numpy as np

from liqwatch.schema import ClusterSnapshot, HeatmapSnapshot, Intensity, Layer
from processors.engine.clusters import find_clusters, tier_for
from processors.engine.common import LONG, MODEL, SHORT, SIDES, FloatArray
from processors.engine.config import AssetConfig
from processors.engine.estimated import EstimatedLayer
from processors.engine.grid import PriceGrid
from processors.engine.realized import RealizedLayer
from processors.engine.tracker import ClusterTracker

HOUR_TF = 2  # index of the 1 h timeframe in the realized layer


def sparse(values: FloatArray, lo: int = 0) -> list[tuple[int, float]]:
    nz = np.flatnonzero(values > 0)
    # one gather and two tolist calls instead of a numpy scalar per entry
    return [(i + lo, v) for i, v in zip(nz.tolist(), values[nz].tolist(), strict=True)]


def heatmap_snapshot(
    asset: str,
    ts: int,
    *,
    grid: PriceGrid,
    price: float,
    realized_window: FloatArray,
    estimated: EstimatedLayer,
    cfg: AssetConfig,
) -> HeatmapSnapshot:
    """Realized: exact totals of the tumbling window that just closed; estimated: the levels
    within ±heatmap_range_pct of price now."""
    lo, hi = grid.span_indices(price, cfg.heatmap_range_pct)
    levels = estimated.state.levels
    return HeatmapSnapshot(
        asset=asset,
        ts=ts,
        model=MODEL,
        grid_origin=grid.origin,
        bucket_bp=grid.bucket_bp,
        mark_price=price,
        realized_long=sparse(realized_window[LONG]),
        realized_short=sparse(realized_window[SHORT]),
        estimated_long=sparse(levels[LONG, lo:hi], lo),
        estimated_short=sparse(levels[SHORT, lo:hi], lo),
    )


def cluster_snapshots(
    asset: str,
    ts: int,
    *,
    grid: PriceGrid,
    price: float,
    tracker: ClusterTracker,
    realized: RealizedLayer,
    cfg: AssetConfig,
) -> list[ClusterSnapshot]:
    out = [
        _snapshot(
            asset,
            ts,
            layer=Layer.ESTIMATED,
            side=c.side,
            band=tracker.band(c),
            notional=c.notional,
            z=c.peak_z,
            tier=c.tier,
            price=price,
        )
        for c in tracker.clusters
        if c.tier is not None
    ]
    floor_z = cfg.cluster.z_dim
    for side in (LONG, SHORT):
        density = realized.state.decayed[HOUR_TF, side]
        for raw in find_clusters(
            density, grid, side, price, cfg=cfg.cluster, floor_z=floor_z, both_halves=True
        ):
            band = (grid.lower_edge(raw.lo - grid.offset), grid.upper_edge(raw.hi - grid.offset))
            tier = tier_for(raw.peak_z, None, cfg.cluster)
            out.append(
                _snapshot(
                    asset,
                    ts,
                    layer=Layer.REALIZED,
                    side=side,
                    band=band,
                    notional=raw.notional,
                    z=raw.peak_z,
                    tier=tier,
                    price=price,
                )
            )
    return out


def _snapshot(
    asset: str,
    ts: int,
    *,
    layer: Layer,
    side: int,
    band: tuple[float, float],
    notional: float,
    z: float,
    tier: Intensity | None,
    price: float,
) -> ClusterSnapshot:
    return ClusterSnapshot(
        asset=asset,
        ts=ts,
        model=MODEL,
        layer=layer,
        side=SIDES[side],
        band_lo=band[0],
        band_hi=band[1],
        notional_usd=notional,
        zscore=z,
        intensity=tier or Intensity.DIM,
        mark_price=price,
    )
