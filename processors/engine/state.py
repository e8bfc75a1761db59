"""The complete state of one asset's engine, as one struct: what a snapshot contains."""

from __future__ import annotations

import msgspec

from processors.engine.approach import ApproachState
from processors.engine.cascade import CascadeState
from processors.engine.estimated import EstimatedState
from processors.engine.implied import ForcedTally
from processors.engine.keylevels import KeyLevelState
from processors.engine.market import MarketState
from processors.engine.pressure import PressureState
from processors.engine.realized import RealizedState
from processors.engine.sweep import SweepState
from processors.engine.tracker import TrackerState

STATE_VERSION = 1


class AssetState(msgspec.Struct, kw_only=True):
    asset: str
    version: int = STATE_VERSION
    clock: int = 0  # latest event time seen
    next_tick: int = 0  # next whole second of time-driven work (0: no event yet)
    grid_offset: int | None = None
    realized: RealizedState
    estimated: EstimatedState
    tracker: TrackerState
    sweep: SweepState
    approach: ApproachState
    cascade: CascadeState
    pressure: PressureState
    key_levels: KeyLevelState
    market: MarketState
    # liquidations per venue:instrument since its last open-interest observation
    forced_since_oi: dict[str, ForcedTally] = msgspec.field(default_factory=dict)
