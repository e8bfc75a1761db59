"""The cluster evaluation's and the OI path's fast paths give bit-identical results to the
simple numpy versions they replaced (kept here as references)."""

from __future__ import annotations

import numpy as np
import pytest

from liqwatch.schema import Intensity
from processors.engine.clusters import TIERS, find_clusters, side_window, tier_for
from processors.engine.common import LONG, SHORT
from processors.engine.config import ClusterConfig, GridConfig, ModelConfig
from processors.engine.estimated import EstimatedLayer, OIChanges
from processors.engine.grid import PriceGrid
from processors.engine.state import RawCluster, TrackedCluster
from processors.engine.tracker import ClusterTracker
from tests.engine.references import consecutive_runs, held_from_columns, reference_from_columns

PRICE = 60_000.0


def reference_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    if not mask.any():
        return []
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def reference_clusters(
    density: np.ndarray,
    grid: PriceGrid,
    side: int,
    price: float,
    cfg: ClusterConfig,
    floor_z: float,
    both_halves: bool,
) -> list[RawCluster]:
    """find_clusters as it was, with ndarray.sum/mean/std."""
    if both_halves:
        a, b = grid.span_indices(price, cfg.window_pct)
    else:
        a, b = side_window(grid, side, price, cfg.window_pct)
    window = density[a:b]
    total = float(window.sum())
    if b - a < 3 or total <= 0:
        return []
    k = max(1, cfg.smooth_buckets)
    smooth = np.convolve(window, np.ones(k) / k, mode="same")
    std = float(smooth.std())
    if std <= 0:
        return []
    z = (smooth - smooth.mean()) / std
    out = []
    for lo, hi in reference_runs(z >= floor_z):
        notional = float(window[lo : hi + 1].sum())
        if notional >= max(cfg.min_share * total, cfg.min_usd):
            peak = float(z[lo : hi + 1].max())
            out.append(RawCluster(side, a + lo + grid.offset, a + hi + grid.offset, notional, peak))
    return out


def reference_tier(z: float, current: Intensity | None, cfg: ClusterConfig) -> Intensity | None:
    up = None
    for tier in TIERS:
        if z >= cfg.tier_threshold(tier):
            up = tier
    if current is None or (up is not None and TIERS.index(up) > TIERS.index(current)):
        return up
    level: Intensity | None = current
    while level is not None and z < cfg.tier_threshold(level) - cfg.hysteresis_z:
        i = TIERS.index(level)
        level = TIERS[i - 1] if i > 0 else None
    return level


def placed_grid() -> PriceGrid:
    grid = PriceGrid(GridConfig())
    grid.centre_on(PRICE)
    return grid


def lumpy_density(rng: np.random.Generator, size: int) -> np.ndarray:
    """Log-normal background with a few dense bands and some empty buckets."""
    density = rng.lognormal(12.0, 1.2, (2, size))
    density[rng.random((2, size)) < 0.2] = 0.0
    for _ in range(6):
        side, at = int(rng.integers(0, 2)), int(rng.integers(0, size - 8))
        density[side, at : at + int(rng.integers(1, 8))] *= rng.uniform(5, 60)
    return density


def compare_clusters(seed: int) -> int:
    """Asserts fast == reference on one random density; returns how many clusters it had."""
    rng = np.random.default_rng(seed)
    grid = placed_grid()
    density = lumpy_density(rng, grid.size)
    cfg = ClusterConfig(
        smooth_buckets=int(rng.integers(1, 6)),
        window_pct=float(rng.choice([0.5, 3.0, 6.0, 20.0])),
        min_usd=float(rng.choice([0.0, 1e5, 1e6])),
    )
    price = PRICE * float(rng.uniform(0.97, 1.03))
    found = 0
    for side in (LONG, SHORT):
        for both in (False, True):
            for floor in (cfg.z_dim - cfg.hysteresis_z, cfg.z_bright, -0.5):
                got = find_clusters(
                    density[side], grid, side, price, cfg=cfg, floor_z=floor, both_halves=both
                )
                want = reference_clusters(density[side], grid, side, price, cfg, floor, both)
                assert got == want  # dataclass equality: exact floats
                found += len(got)
    return found


@pytest.mark.parametrize("seed", range(40))
def test_find_clusters_is_bit_identical_to_the_numpy_version(seed: int) -> None:
    compare_clusters(seed)


def test_the_compared_densities_really_have_clusters() -> None:
    assert sum(compare_clusters(seed) > 0 for seed in range(40)) >= 30


def test_find_clusters_degenerate_windows_match() -> None:
    grid = placed_grid()
    cfg = ClusterConfig()
    flat = np.full(grid.size, 5e6)
    empty = np.zeros(grid.size)
    single = empty.copy()
    single[grid.index(PRICE) - 3] = 4e7
    for density in (flat, empty, single):
        for side in (LONG, SHORT):
            got = find_clusters(density, grid, side, PRICE, cfg=cfg, floor_z=1.0)
            assert got == reference_clusters(density, grid, side, PRICE, cfg, 1.0, False)
    assert find_clusters(single, grid, LONG, PRICE, cfg=cfg, floor_z=1.0)  # one bright spike
    assert find_clusters(flat, grid, LONG, PRICE, cfg=cfg, floor_z=1.0) == []  # std 0


@pytest.mark.parametrize("seed", range(20))
def test_consecutive_runs_match_the_mask_runs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 1.5, int(rng.integers(0, 90)))
    floor = float(rng.normal(0.5, 1.0))
    hot = np.flatnonzero(values >= floor).tolist()
    assert consecutive_runs(hot) == reference_runs(values >= floor)


def test_consecutive_runs_edges() -> None:
    assert consecutive_runs([]) == []
    assert consecutive_runs([4]) == [(4, 4)]
    assert consecutive_runs([0, 1, 3, 5, 6, 7]) == [(0, 1), (3, 3), (5, 7)]


def test_tier_for_matches_the_reference_with_hysteresis() -> None:
    configs = [ClusterConfig(), ClusterConfig(z_dim=1.0, z_medium=1.0, z_bright=4.0)]
    zs = [x / 8 for x in range(-8, 48)]
    for cfg in configs:
        for current in (None, *TIERS):
            for z in zs:
                assert tier_for(z, current, cfg) == reference_tier(z, current, cfg), (z, current)


@pytest.mark.parametrize("shift", [0, 317, -2000])
def test_near_and_far_edges_are_the_band_edges(shift: int) -> None:
    grid = placed_grid()
    grid.offset += shift  # an offset far from price must not matter
    tracker = ClusterTracker(ClusterConfig(), grid)
    here = grid.global_index(PRICE)
    for side, lo, hi in ((LONG, here - 30, here - 25), (SHORT, here + 4, here + 4)):
        c = TrackedCluster(
            cid="c", side=side, lo=lo, hi=hi, notional=1.0, peak_z=3.0, tier=None,
            first_seen=0, last_seen=0,
        )  # fmt: skip
        low, high = tracker.band(c)
        near, far = (high, low) if side == LONG else (low, high)
        assert tracker.near_edge(c) == near
        assert tracker.far_edge(c) == far
        for price in (PRICE, PRICE * 0.97, PRICE * 1.013, near):
            gap = price - near if side == LONG else near - price
            assert tracker.distance_pct(c, price) == gap / price * 100.0


def reference_apply(layer: EstimatedLayer, c: OIChanges, after: np.ndarray | None = None) -> None:
    """_add_levels as it was: bucket indices per deposit (``after``: the removal factors that
    follow each change, none by default)."""
    now = int(c.ts.max())
    if after is None:
        layer.decay_to(now)
        after = np.ones(c.ts.size)
    adds = c.delta_usd > 0
    age = (now - c.ts[adds]).astype(np.float64)
    usd = c.delta_usd[adds] * after[adds]
    kept = usd * np.exp2(-age / layer.half_life_ms)
    fresh = usd * np.exp2(-age / layer.fresh_half_life_ms)
    share = c.long_share[adds][:, None]
    price = c.price[adds][:, None]
    layer.state.added_usd += float(kept.sum())
    w = layer.weights[None, :]
    long_px, short_px = price * layer.long_mult[None, :], price * layer.short_mult[None, :]
    for arr, amount in ((layer.state.levels, kept), (layer.state.fresh, fresh)):
        for target, px, part in ((arr[LONG], long_px, share), (arr[SHORT], short_px, 1 - share)):
            idx = layer.grid.indices(px.reshape(-1))
            amounts = (amount[:, None] * part * w).reshape(-1)
            on_grid = (idx >= 0) & (idx < layer.grid.size)
            if arr is layer.state.levels:  # the levels count what falls off, not their copy
                layer.state.off_grid_usd += float(amounts[~on_grid].sum())
            np.add.at(target, idx[on_grid], amounts[on_grid])


@pytest.mark.parametrize("seed", range(10))
def test_estimated_apply_deposits_bit_identically(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    ts = np.sort(1_760_000_000_000 + rng.integers(0, 1000, n))
    # some prices far off the grid, so the off-grid tally is exercised too
    price = PRICE * rng.choice([1.0, 1.0, 1.0, 3.0], n) * rng.uniform(0.99, 1.01, n)
    changes = OIChanges(
        ts=ts,
        price=price,
        delta_usd=rng.lognormal(13, 1.0, n),
        long_share=rng.uniform(0.3, 0.7, n),
        total_before_usd=np.full(n, 1e9),
    )
    layers = [EstimatedLayer(ModelConfig(), placed_grid()) for _ in range(2)]
    for layer in layers:
        layer.state.decayed_at = int(ts[0]) - 5_000
        layer.state.levels[:] = 1e4
        layer.state.fresh[:] = 1e3
    layers[0].apply(changes)
    reference_apply(layers[1], changes)
    fast, ref = layers[0].state, layers[1].state
    assert np.array_equal(fast.levels, ref.levels)
    assert np.array_equal(fast.fresh, ref.fresh)
    assert (fast.added_usd, fast.off_grid_usd) == (ref.added_usd, ref.off_grid_usd)
    assert fast.levels.sum() > 1e4 * fast.levels.size  # something was deposited


def reference_observe(
    layer: EstimatedLayer,
    keys: list[tuple[str, str]],
    codes: np.ndarray,
    cols: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> tuple[OIChanges, dict[int, int]]:
    """EstimatedLayer.observe as it was: on numpy columns."""
    ts, base, usd, price = cols
    held = [held_from_columns(layer, k, key, codes, cols) for k, key in enumerate(keys)]
    prev = np.array([[h.oi_base, h.oi_usd, h.price, h.ts] for h in held])
    order = np.lexsort((ts, codes))
    code, ts, base, usd, price = codes[order], ts[order], base[order], usd[order], price[order]
    fresh = ts > prev[code, 3]
    code, ts, base, usd, price = code[fresh], ts[fresh], base[fresh], usd[fresh], price[fresh]
    first = np.ones(code.size, dtype=bool)
    first[1:] = code[1:] != code[:-1]

    def before(col: np.ndarray, k: int) -> np.ndarray:
        shifted = np.empty_like(col)
        shifted[1:] = col[:-1]
        return np.where(first, prev[code, k], shifted)

    inverse = np.array([h.inverse for h in held], dtype=bool)[code]
    growth = usd - before(usd, 1)
    delta = np.where(inverse, growth, (base - before(base, 0)) * price)
    reference = reference_from_columns(layer, ts, price, before(price, 2))
    share = layer._long_share(price / reference - 1.0)
    last = np.ones(code.size, dtype=bool)
    last[:-1] = first[1:]
    for i in np.flatnonzero(last).tolist():
        h = held[int(code[i])]
        layer.state.total_oi_usd += float(usd[i]) - h.oi_usd
        h.oi_base, h.oi_usd = float(base[i]), float(usd[i])
        h.price, h.ts = float(price[i]), int(ts[i])
    by_time = np.argsort(ts, kind="stable")
    total_before = layer.state.total_oi_usd - float(growth.sum()) + np.cumsum(growth[by_time])
    total_before -= growth[by_time]
    changes = OIChanges(ts[by_time], price[by_time], delta[by_time], share[by_time], total_before)
    position = np.empty(by_time.size, dtype=np.int64)
    position[by_time] = np.arange(by_time.size)
    return changes, {int(code[i]): int(position[i]) for i in np.flatnonzero(first)}


KEYS = [("bybit", "BTC-USDT-PERP"), ("okx", "BTC-USD-INVERSE"), ("binance", "BTC-USDT-PERP")]
KEYS += [(f"v{n}", "BTC-USD-INVERSE" if n % 2 else "BTC-USDC-PERP") for n in range(7)]


def oi_run(rng: np.random.Generator, t0: int, n: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """A time-sorted run over all instruments, with repeated and out-of-order timestamps."""
    codes = rng.integers(0, len(KEYS), n)
    ts = np.sort(t0 + rng.integers(-300, 1000, n))
    price = PRICE * (1 + rng.normal(0, 5e-4, n))
    base = rng.uniform(1e3, 2e3, n)
    return codes, (ts, base, base * price * rng.uniform(0.99, 1.01, n), price)


@pytest.mark.parametrize(
    "model",
    [ModelConfig(), ModelConfig(direction_window_s=3), ModelConfig(split="even")],
    ids=["default", "window", "even"],
)
def test_observe_on_python_rows_is_bit_identical_to_the_column_version(model: ModelConfig) -> None:
    rng = np.random.default_rng(7)
    fast, ref = (EstimatedLayer(model, placed_grid()) for _ in range(2))
    seen_changes = 0
    for step in range(60):
        codes, cols = oi_run(rng, 1_760_000_000_000 + step * 1000, int(rng.integers(1, 45)))
        got, got_firsts = fast.observe(
            KEYS, codes, ts=cols[0], base=cols[1], usd=cols[2], price=cols[3]
        )
        want, want_firsts = reference_observe(ref, KEYS, codes, cols)  # type: ignore[arg-type]
        for field in ("ts", "price", "delta_usd", "long_share", "total_before_usd"):
            a, b = getattr(got, field), getattr(want, field)
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), field
        assert got_firsts == want_firsts
        assert list(got_firsts) == list(want_firsts)  # same order too
        seen_changes += got.ts.size
    assert fast.state.total_oi_usd == ref.state.total_oi_usd
    assert fast.state.instruments == ref.state.instruments
    assert fast.state.prices == ref.state.prices
    assert seen_changes > 500


def test_observe_of_only_stale_rows_returns_empty_typed_columns() -> None:
    layer = EstimatedLayer(ModelConfig(), placed_grid())
    one = np.zeros(1, dtype=np.int64)
    for t, base in ((2_000, 10.0), (1_000, 20.0)):
        got, firsts = layer.observe(
            KEYS[:1],
            one,
            ts=np.array([t], dtype=np.int64),
            base=np.array([base]),
            usd=np.array([base * PRICE]),
            price=np.array([PRICE]),
        )
    assert got.ts.dtype == np.int64 and got.ts.size == 0
    assert got.delta_usd.dtype == np.float64 and got.total_before_usd.size == 0
    assert firsts == {}
    assert layer.total_oi_usd() == 10.0 * PRICE


def test_ratio_divides_by_zero_like_numpy() -> None:
    from processors.engine.estimated import _ratio

    for p in (1.0, -2.0, 0.0, float("nan"), float("inf")):
        for r in (0.0, -0.0, 3.0, float("inf")):
            with np.errstate(divide="ignore", invalid="ignore"):
                want = float(np.float64(p) / np.float64(r))
            got = _ratio(p, r)
            assert got == want or (got != got and want != want), (p, r)  # noqa: PLR0124


def reference_factors(layer: EstimatedLayer, changes: OIChanges) -> np.ndarray:
    """_removal_factors as it was, on numpy columns."""
    factors = np.ones(changes.ts.size)
    falls = np.flatnonzero(changes.delta_usd < 0)
    if falls.size == 0:
        return factors
    by_layer = layer.cfg.removal == "layer"
    total = float(layer.state.levels.sum())
    rises = np.where(changes.delta_usd > 0, changes.delta_usd, 0.0)
    rises_before = np.cumsum(rises) - rises
    grown = 0.0
    for i in falls.tolist():
        total += float(rises_before[i]) - grown
        grown = float(rises_before[i])
        base = total if by_layer else float(changes.total_before_usd[i])
        keep = max(0.0, 1.0 + float(changes.delta_usd[i]) / base) if base > 0 else 1.0
        total *= keep
        factors[i] = keep
    return factors


def reference_full_apply(layer: EstimatedLayer, changes: OIChanges) -> None:
    """EstimatedLayer.apply as it was (numpy cumprod/prod over the factors)."""
    now = int(changes.ts.max())
    layer.decay_to(now)
    factors = reference_factors(layer, changes)
    after = np.append(np.cumprod(factors[::-1])[::-1][1:], 1.0)
    total_factor = float(np.prod(factors))
    if total_factor != 1.0:
        layer.state.removed_usd += (1 - total_factor) * float(layer.state.levels.sum())
        layer.state.levels *= total_factor
        layer.state.fresh *= total_factor
    if (changes.delta_usd > 0).any():
        reference_apply(layer, changes, after)


@pytest.mark.parametrize("removal", ["layer", "open_interest"])
def test_apply_with_falls_is_bit_identical_to_the_numpy_version(removal: str) -> None:
    rng = np.random.default_rng(11)
    layers = [EstimatedLayer(ModelConfig(removal=removal), placed_grid()) for _ in range(2)]
    removed = 0
    for step in range(80):
        n = int(rng.integers(1, 30))
        ts = np.sort(1_760_000_000_000 + step * 1000 + rng.integers(0, 1000, n))
        sign = np.where(rng.random(n) < float(rng.choice([0.0, 0.5, 1.0])), -1.0, 1.0)
        changes = OIChanges(
            ts=ts,
            price=PRICE * rng.uniform(0.98, 1.02, n),
            delta_usd=sign * rng.lognormal(13, 1.5, n),
            long_share=rng.uniform(0.3, 0.7, n),
            total_before_usd=rng.uniform(5e7, 3e8, n),
        )
        layers[0].apply(changes)
        reference_full_apply(layers[1], changes)
        fast, ref = layers[0].state, layers[1].state
        assert fast.levels.tobytes() == ref.levels.tobytes()
        assert fast.fresh.tobytes() == ref.fresh.tobytes()
        assert (fast.added_usd, fast.removed_usd) == (ref.added_usd, ref.removed_usd)
        removed += fast.removed_usd > 0
    assert removed > 10  # the falls really removed something
