"""Snapshot/restore: a restored engine continues exactly as if it had never stopped."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liqwatch.schema import Alert, CascadePhase, CascadeSignal
from processors.engine import Engine, EngineConfig, SnapshotError
from processors.engine.config import GridConfig, ModelConfig
from processors.engine.estimated import EstimatedLayer, OIChanges
from processors.engine.grid import PriceGrid
from processors.engine.serde import decode_state, encode_state
from processors.engine.state import EstimatedState
from tests.engine.events import T0
from tests.engine.market import random_envelopes


def run(engine: Engine, envelopes: list) -> list:  # type: ignore[type-arg]
    out: list[object] = []
    for events in envelopes:
        out += engine.process(events)
    return out


def restored_after(envelopes: list, split: int) -> tuple[list, Engine]:  # type: ignore[type-arg]
    first = Engine(EngineConfig.default())
    run(first, envelopes[:split])
    blobs = {asset: first.snapshot(asset) for asset in first.assets()}
    second = Engine(EngineConfig.default())
    for asset, blob in blobs.items():
        second.restore(asset, blob)
    return run(second, envelopes[split:]), second


def test_restore_mid_cascade_gives_identical_outputs() -> None:
    envelopes = random_envelopes(seed=3)
    whole = Engine(EngineConfig.default())
    outputs: list[object] = []
    split = None
    for i, events in enumerate(envelopes):
        out = whole.process(events)
        started = [
            o for o in out if isinstance(o, CascadeSignal) and o.phase is CascadePhase.STARTED
        ]
        if started and split is None:
            split = i + 1  # the cascade is live right after this envelope
            outputs = []
            continue
        outputs += out
    assert split is not None, "the random market should have a cascade"
    assert any(isinstance(o, CascadeSignal) and o.phase is CascadePhase.ENDED for o in outputs)
    resumed, engine = restored_after(envelopes, split)
    assert resumed == outputs
    assert engine.snapshot("BTC") == whole.snapshot("BTC")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), cut=st.floats(0.05, 0.95))
def test_restore_anywhere_gives_identical_outputs(seed: int, cut: float) -> None:
    envelopes = random_envelopes(seed, seconds=150)
    split = int(len(envelopes) * cut)
    whole = Engine(EngineConfig.default())
    before = run(whole, envelopes[:split])
    after = run(whole, envelopes[split:])
    resumed, engine = restored_after(envelopes, split)
    assert resumed == after
    assert engine.snapshot("BTC") == whole.snapshot("BTC")
    assert len(before) + len(after) > 0


def test_replay_is_deterministic_and_alert_ids_repeat() -> None:
    envelopes = random_envelopes(seed=11)
    a = run(Engine(EngineConfig.default()), envelopes)
    b = run(Engine(EngineConfig.default()), envelopes)
    assert a == b
    ids = [o.alert_id for o in a if isinstance(o, Alert)]
    assert ids and len(ids) == len(set(ids))  # unique within a run, identical across runs


def test_snapshot_is_compact() -> None:
    engine = Engine(EngineConfig.default())
    run(engine, random_envelopes(seed=5))
    assert len(engine.snapshot("BTC")) < 200_000


def test_corrupt_or_foreign_snapshot_is_a_clear_error() -> None:
    engine = Engine(EngineConfig.default())
    run(engine, random_envelopes(seed=5, seconds=130))
    blob = engine.snapshot("BTC")
    with pytest.raises(SnapshotError, match="cannot restore BTC"):
        Engine(EngineConfig.default()).restore("BTC", blob[: len(blob) // 2])
    with pytest.raises(SnapshotError, match="snapshot is for BTC"):
        Engine(EngineConfig.default()).restore("ETH", blob)
    assert T0 > 0


def test_a_restored_estimated_layer_counts_off_grid_levels_as_the_saved_one_does() -> None:
    """Mostly-zero arrays are saved sparse; restored, they must be arrays in their own right:
    the layer tells its own levels from the fresh ones by identity when it tallies levels
    that fall off the grid."""
    grid = PriceGrid(GridConfig())
    grid.centre_on(60_000.0)
    saved = EstimatedLayer(ModelConfig(), grid)
    blob = encode_state(saved.state)
    restored = EstimatedLayer(ModelConfig(), grid, decode_state(blob, EstimatedState))
    # opened near the grid's lower edge: the long levels of every tier land below it
    low = 60_000.0 * float(np.exp(-0.69))
    changes = OIChanges(
        ts=np.array([T0, T0 + 1_000]),
        price=np.array([low, 60_000.0]),
        delta_usd=np.array([5e6, 3e6]),
        long_share=np.array([0.6, 0.5]),
        total_before_usd=np.full(2, 1e9),
    )
    for layer in (saved, restored):
        layer.state.decayed_at = T0
        layer.apply(changes)
    assert saved.state.off_grid_usd > 0
    assert restored.state.off_grid_usd == saved.state.off_grid_usd
    assert np.array_equal(restored.state.levels, saved.state.levels)
