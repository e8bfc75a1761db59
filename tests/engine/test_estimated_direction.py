"""With ``direction_window_s`` (60 s by default; 0 = since the instrument's last poll), the
long/short split of new open interest follows the price move over a fixed horizon, not over the
venue's polling interval."""

from __future__ import annotations

import numpy as np
import pytest

from processors.engine.config import GridConfig, ModelConfig
from processors.engine.estimated import EstimatedLayer, OIChanges
from processors.engine.grid import PriceGrid
from tests.engine.events import T0

P = 100_000.0


def layer(**model: object) -> EstimatedLayer:
    grid = PriceGrid(GridConfig())
    grid.centre_on(P)
    return EstimatedLayer(ModelConfig(**model), grid)  # type: ignore[arg-type]


def poll(est: EstimatedLayer, ts: int, contracts: float, price: float) -> OIChanges:
    """One observation of a linear instrument polled every second."""
    changes, _ = est.observe(
        [("bybit", "BTC-USDT-PERP")],
        np.zeros(1, dtype=np.int64),
        ts=np.array([ts], dtype=np.int64),
        base=np.array([contracts]),
        usd=np.array([contracts * price]),
        price=np.array([price]),
    )
    return changes


def climb(est: EstimatedLayer, seconds: int) -> list[float]:
    """Price rises 1 bp a second while contracts grow: takers buying and opening."""
    shares = []
    for s in range(seconds + 1):
        got = poll(est, T0 + s * 1000, 1000.0 + s, P * (1 + s * 1e-4))
        shares += got.long_share.tolist()
    return shares


def test_a_steady_climb_polled_every_second_reads_as_longs_opening() -> None:
    shares = climb(layer(direction_window_s=60), 60)
    assert shares[-1] == pytest.approx(0.7)  # 60 bp over the last 60 s: the full bias
    assert shares[5] == pytest.approx(0.6, abs=1e-3)  # 5 bp since the first poll: half of it


def test_default_window_is_sixty_seconds() -> None:
    assert ModelConfig().direction_window_s == 60


def test_without_a_window_a_one_second_poll_sees_almost_nothing() -> None:
    shares = climb(layer(direction_window_s=0), 60)
    assert shares[-1] == pytest.approx(0.5 + 0.2 * 0.1, abs=1e-3)  # 1 bp per poll


def test_the_price_history_stays_bounded() -> None:
    est = layer(direction_window_s=60)
    climb(est, 600)
    assert len(est.state.prices) <= 63
    assert est.state.prices[-1][0] == T0 + 600_000
    assert est.state.prices[0][0] <= T0 + 600_000 - 60_000


def test_without_a_window_no_price_history_is_kept() -> None:
    est = layer(direction_window_s=0)
    climb(est, 5)
    assert est.state.prices == []
