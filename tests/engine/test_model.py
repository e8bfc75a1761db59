"""The estimated-levels model: level prices per tier, removal, consumption, decay, OI deltas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liqwatch.schema import Side
from processors.engine.common import LONG, SHORT
from processors.engine.config import GridConfig, ModelConfig
from processors.engine.estimated import EstimatedLayer, OIChanges, liquidation_prices
from processors.engine.grid import PriceGrid, shift_arrays
from tests.engine.events import T0, Driver, config, liq, mark, oi

P = 100_000.0
TIERS = {5: (80_500.0, 119_500.0), 10: (90_500.0, 109_500.0), 25: (96_500.0, 103_500.0),
         50: (98_500.0, 101_500.0), 100: (99_500.0, 100_500.0)}  # fmt: skip
WEIGHTS = {5: 0.15, 10: 0.30, 25: 0.25, 50: 0.20, 100: 0.10}


def make_layer(**model: object) -> tuple[PriceGrid, EstimatedLayer]:
    grid = PriceGrid(GridConfig())
    grid.centre_on(P)
    return grid, EstimatedLayer(ModelConfig(**model), grid)  # type: ignore[arg-type]


def changes(*rows: tuple[int, float, float, float], total: float = 1e12) -> OIChanges:
    """(ts, price, delta_usd, long_share) rows."""
    a = np.array(rows, dtype=float).reshape(-1, 4)
    return OIChanges(
        ts=a[:, 0].astype(np.int64),
        price=a[:, 1],
        delta_usd=a[:, 2],
        long_share=a[:, 3],
        total_before_usd=np.full(len(a), total),
    )


def test_liquidation_price_of_every_tier() -> None:
    longs, shorts = liquidation_prices(ModelConfig(), P)
    for (lev, (long_px, short_px)), lo, hi in zip(TIERS.items(), longs, shorts, strict=True):
        assert lo == pytest.approx(long_px), lev
        assert hi == pytest.approx(short_px), lev


def test_open_interest_rise_lands_on_every_tier_with_its_weight() -> None:
    grid, layer = make_layer()
    layer.apply(changes((T0, P, 100e6, 0.5)))
    for lev, (long_px, short_px) in TIERS.items():
        expected = 100e6 * 0.5 * WEIGHTS[lev]
        assert layer.state.levels[LONG, grid.index(long_px)] == pytest.approx(expected), lev
        assert layer.state.levels[SHORT, grid.index(short_px)] == pytest.approx(expected), lev
    assert layer.state.levels.sum() == pytest.approx(100e6)


def test_price_direction_splits_new_open_interest() -> None:
    _, layer = make_layer()
    up, flat, down = layer._long_share(np.array([0.002, 0.0, -0.0005]))
    assert up == pytest.approx(0.7)  # a full 10 bp move or more applies the whole bias
    assert flat == pytest.approx(0.5)
    assert down == pytest.approx(0.4)  # half the move, half the bias
    _, even = make_layer(split="even")
    assert even._long_share(np.array([0.01]))[0] == pytest.approx(0.5)


def test_fall_removes_proportionally_from_the_layer() -> None:
    _, layer = make_layer()
    layer.apply(changes((T0, P, 100e6, 0.5)))
    before = layer.state.levels.copy()
    layer.apply(changes((T0 + 1000, P, -25e6, 0.5)))
    assert np.allclose(layer.state.levels, before * 0.75)


def test_fall_removes_the_share_of_total_open_interest_in_that_mode() -> None:
    _, layer = make_layer(removal="open_interest")
    layer.apply(changes((T0, P, 100e6, 0.5)))
    before = layer.state.levels.copy()
    layer.apply(changes((T0 + 1000, P, -25e6, 0.5), total=1e9))
    assert np.allclose(layer.state.levels, before * (1 - 25e6 / 1e9))


def test_removal_and_additions_in_one_chunk_keep_their_order() -> None:
    _, a = make_layer()
    a.apply(changes((T0, P, 100e6, 0.5), (T0 + 1, P, -50e6, 0.5), (T0 + 2, P, 20e6, 0.5)))
    _, b = make_layer()
    for row in [(T0, P, 100e6, 0.5), (T0 + 1, P, -50e6, 0.5), (T0 + 2, P, 20e6, 0.5)]:
        b.apply(changes(row))
    assert np.allclose(a.state.levels, b.state.levels)
    assert a.state.levels.sum() == pytest.approx(70e6)


def test_crossing_consumes_only_the_levels_price_reached() -> None:
    grid, layer = make_layer()
    layer.apply(changes((T0, P, 100e6, 0.5)))
    shorts_before = layer.state.levels[SHORT].copy()
    consumed = layer.consume(low=97_000.0, high=P)
    reached = {lev for lev, (px, _) in TIERS.items() if px >= 97_000}
    assert reached == {50, 100}
    assert consumed.long_usd.sum() == pytest.approx(sum(100e6 * 0.5 * WEIGHTS[x] for x in reached))
    assert set((consumed.long_idx - grid.offset).tolist()) == {
        grid.index(TIERS[x][0]) for x in reached
    }
    assert layer.state.levels[LONG, grid.index(TIERS[25][0])] > 0  # 96,500: not reached
    assert layer.state.levels[LONG, grid.index(97_000.0) :].sum() == 0
    assert np.array_equal(layer.state.levels[SHORT], shorts_before)


def test_levels_decay_with_the_half_life() -> None:
    _, layer = make_layer(half_life_h=48.0)
    layer.apply(changes((T0, P, 100e6, 0.5)))
    layer.decay_to(T0 + 48 * 3_600_000)
    assert layer.state.levels.sum() == pytest.approx(50e6)
    layer.decay_to(T0 + 96 * 3_600_000)
    assert layer.state.levels.sum() == pytest.approx(25e6)


def observe(layer: EstimatedLayer, instrument: str, *rows: tuple[int, float, float, float]):  # type: ignore[no-untyped-def]
    a = np.array(rows, dtype=float).reshape(-1, 4)
    return layer.observe(
        [("bybit", instrument)],
        np.zeros(len(a), dtype=np.int64),
        ts=a[:, 0].astype(np.int64),
        base=a[:, 1],
        usd=a[:, 2],
        price=a[:, 3],
    )


def test_linear_open_interest_counts_contracts_not_price_moves() -> None:
    _, layer = make_layer()
    rows = [
        (T0, 1000, 1000 * P, P),
        (T0 + 1, 1000, 1010 * P, 1.01 * P),
        (T0 + 2, 1010, 1010 * P, P),
    ]
    got, firsts = observe(layer, "BTC-USDT-PERP", *rows)
    assert got.delta_usd.tolist() == pytest.approx([0.0, 10 * P])  # the first one is the baseline
    assert firsts == {0: 0}
    assert layer.total_oi_usd() == pytest.approx(1010 * P)


def test_inverse_open_interest_counts_usd() -> None:
    _, layer = make_layer()
    got, _ = observe(layer, "BTC-USD-INVERSE", (T0, 1e8 / P, 1e8, P), (T0 + 1, 1.2e8 / P, 1.2e8, P))
    assert got.delta_usd.tolist() == pytest.approx([2e7])


def test_stale_observation_says_nothing() -> None:
    _, layer = make_layer()
    observe(layer, "BTC-USDT-PERP", (T0 + 10, 1000, 1000 * P, P))
    got, _ = observe(layer, "BTC-USDT-PERP", (T0 + 5, 2000, 2000 * P, P))
    assert got.ts.size == 0
    assert layer.total_oi_usd() == pytest.approx(1000 * P)


def test_grid_maps_prices_to_log_buckets_and_shifts() -> None:
    grid = PriceGrid(GridConfig(bucket_bp=10.0, span_log=0.1))
    grid.centre_on(P)
    i = grid.index(P)
    assert grid.lower_edge(i) <= P < grid.upper_edge(i)
    assert grid.upper_edge(i) / grid.lower_edge(i) == pytest.approx(1.001)
    assert grid.origin == pytest.approx(grid.lower_edge(0))
    arr = np.zeros((2, grid.size))
    arr[0, i] = 5.0
    delta = grid.centre_on(P * 1.08)  # beyond the middle half of a ±10 % grid: it moves
    assert delta > 0
    shift_arrays(delta, arr)
    assert arr[0, grid.index(P)] == 5.0  # the same price, the same mass, a new index
    assert grid.centre_on(P * 1.081) == 0


def test_engine_nets_liquidations_out_of_the_open_interest_fall() -> None:
    """An OI fall that the liquidations seen explain is not a voluntary close: no removal."""
    d = Driver(config(model={"split": "even"}))
    d.feed([mark(T0, P), oi(T0, 1000, P), mark(T0 + 1000, P), oi(T0 + 1000, 1100, P)])
    layer = d.engine.asset_engine("BTC").estimated
    before = float(layer.state.levels.sum())
    assert before == pytest.approx(100 * P)
    d.feed([liq(T0 + 1500, Side.LONG, P * 0.999, 20 * P), oi(T0 + 2000, 1080, P)])
    assert float(layer.state.levels.sum()) == pytest.approx(before, rel=1e-4)  # decay only
    d.feed([oi(T0 + 3000, 1030, P)])  # 50 contracts closed voluntarily
    assert float(layer.state.levels.sum()) == pytest.approx(before - 50 * P, rel=1e-4)
    assert math.isclose(layer.total_oi_usd(), 1030 * P)
