"""Every msgspec record of the engine but its settings (config.py, also interpreted): the
complete state of one asset (what a snapshot contains) and the records its components keep and
pass around.

They live here, in a module mypyc does not compile, because mypyc drops a class statement's
keywords (python/mypy#21938): a compiled ``class X(msgspec.Struct, frozen=True, kw_only=True)``
would silently lose ``frozen`` and ``kw_only``. The components that use them are compiled.
"""

from __future__ import annotations

import msgspec
import numpy as np

from liqwatch.schema import Completeness, Intensity

# --- implied ---


class ForcedTally(msgspec.Struct, kw_only=True):
    """Liquidations seen on one instrument since its last open-interest observation."""

    usd: list[float] = msgspec.field(default_factory=lambda: [0.0, 0.0])
    seconds: list[int] = msgspec.field(default_factory=lambda: [0, 0])
    last_second: list[int] = msgspec.field(default_factory=lambda: [-1, -1])

    @property
    def total_usd(self) -> float:
        return self.usd[0] + self.usd[1]


# --- market ---


class MarkInfo(msgspec.Struct, kw_only=True):
    venue: str
    price: float
    funding: float | None
    ts: int


class VenueInfo(msgspec.Struct, kw_only=True):
    last_ts: int
    completeness: Completeness


class MarketState(msgspec.Struct, kw_only=True):
    price: float = 0.0
    price_ts: int = 0
    marks: dict[str, MarkInfo] = msgspec.field(default_factory=dict)
    venues: dict[str, VenueInfo] = msgspec.field(default_factory=dict)
    instruments: dict[str, int] = msgspec.field(default_factory=dict)  # instrument → last ts
    oi_history: list[tuple[int, float]] = msgspec.field(default_factory=list)
    stale: list[str] = msgspec.field(default_factory=list)


# --- realized ---


class RealizedState(msgspec.Struct, kw_only=True):
    decayed: np.ndarray  # (timeframe, side, bucket)
    totals: np.ndarray  # (timeframe, side): decayed sums over all buckets, incl. off-grid
    tumbling: np.ndarray  # (side, bucket), exact, for the window starting at window_start
    tumbling_totals: np.ndarray  # (side,)
    window_start: int
    decayed_at: int


# --- estimated ---


class InstrumentOI(msgspec.Struct, kw_only=True):
    venue: str
    instrument: str
    inverse: bool
    oi_base: float
    oi_usd: float
    price: float  # price at the previous observation, for the direction split
    ts: int


class EstimatedState(msgspec.Struct, kw_only=True):
    levels: np.ndarray  # (side, bucket) USD
    fresh: np.ndarray  # (side, bucket) the same, fading fast: how much of a level is new
    decayed_at: int
    instruments: dict[str, InstrumentOI]
    total_oi_usd: float = 0.0  # sum of the instruments' latest oi_usd
    # (ts, mark price) of recent observations, for the direction split over a fixed horizon
    prices: list[tuple[int, float]] = msgspec.field(default_factory=list)
    added_usd: float = 0.0
    removed_usd: float = 0.0
    consumed_usd: float = 0.0
    off_grid_usd: float = 0.0


# --- clusters ---


class RawCluster(msgspec.Struct, frozen=True):
    side: int
    lo: int  # global bucket index, inclusive
    hi: int  # global bucket index, inclusive
    notional: float
    peak_z: float


# --- tracker ---


class TrackedCluster(msgspec.Struct, kw_only=True):
    cid: str
    side: int
    lo: int  # global bucket indices, inclusive
    hi: int
    notional: float
    peak_z: float
    tier: Intensity | None
    first_seen: int
    last_seen: int
    misses: int = 0
    announced: bool = False
    touched_at: int = 0  # price inside the band since (0: not inside)
    price_before: float = 0.0  # the last price before it entered the band
    ever_touched: bool = False
    consumed: float = 0.0  # estimated USD consumed by price inside the band
    # once announced, the band is held fixed so its notional is measured on the same buckets
    band_lo: int = 0
    band_hi: int = 0
    band_usd: float = 0.0
    peak_usd: float = 0.0
    retired: bool = False  # dissolved: never announced again (a new cluster may form there)
    news_since: int = 0  # bright and news without a break since (0: not now)


class TrackerState(msgspec.Struct, kw_only=True):
    clusters: list[TrackedCluster] = msgspec.field(default_factory=list)
    dominant: list[str] = msgspec.field(default_factory=lambda: ["", ""])


# --- approach ---


class OpenApproach(msgspec.Struct, kw_only=True):
    alert_id: str
    cid: str
    side: int
    band_lo: float
    band_hi: float
    near: float
    invalidation: float
    created_at: int
    price_at: float
    notional: float
    zscore: float


class ApproachState(msgspec.Struct, kw_only=True):
    open: list[OpenApproach] = msgspec.field(default_factory=list)
    disarmed: list[str] = msgspec.field(default_factory=list)  # cluster ids awaiting re-arm


# --- sweep ---


class PendingSweep(msgspec.Struct, kw_only=True):
    cid: str
    side: int
    band_lo: float
    band_hi: float
    tier: Intensity
    zscore: float
    touched_at: int
    crossed_at: int
    estimated_usd: float
    price_before: float
    price_after: float
    realized_usd: float = 0.0  # realized liquidations in the band within ±T of the crossing
    busy_seconds: list[int] = msgspec.field(default_factory=list)  # …of a sampled feed


class LiqChunk(msgspec.Struct, kw_only=True):
    """One time-sorted run of realized liquidations: time, placement price, side, USD."""

    ts: np.ndarray
    price: np.ndarray
    side: np.ndarray
    usd: np.ndarray
    sampled: np.ndarray


class SweepState(msgspec.Struct, kw_only=True):
    pending: list[PendingSweep] = msgspec.field(default_factory=list)
    recent: list[LiqChunk] = msgspec.field(default_factory=list)  # for confirmation
    last_price: float = 0.0


# --- cascade ---


class CascadeRun(msgspec.Struct, kw_only=True):
    cascade_id: str
    side: int
    started_at: int
    detected_at: int
    threshold: float
    level: float  # side window notional at the last phase change
    total: float
    events: int
    venues_mask: int
    price_start: float
    peak_rate: float
    last_active: int
    window: float
    phase_seq: int = 0
    implied: float = 0.0  # notional implied by open interest on sampled venues
    last_event: int = 0  # time of the cascade side's latest liquidation


class CascadeState(msgspec.Struct, kw_only=True):
    notional: np.ndarray  # (side, bin ring)
    count: np.ndarray  # (side, bin ring)
    biggest: np.ndarray  # (side, bin ring) largest single liquidation
    first_ts: np.ndarray  # (side, bin ring) earliest liquidation time in the bin
    venues: np.ndarray  # (side, bin ring) bit mask of venues
    price: np.ndarray  # (bin ring) last mark price in the bin, NaN if none
    head_bin: int
    per_second: np.ndarray  # (second ring) total notional, both sides, for the baseline
    head_sec: int
    baseline_sec: int = -1
    baseline_value: float = 0.0
    runs: list[CascadeRun | None] = msgspec.field(default_factory=lambda: [None, None])
    last_liq: list[int] = msgspec.field(default_factory=lambda: [0, 0])  # latest per side


# --- pressure ---


class PressureState(msgspec.Struct, kw_only=True):
    samples: np.ndarray  # (timeframe, history) ring of x
    count: np.ndarray  # (timeframe,) samples taken so far
    value: np.ndarray  # (timeframe,) latest pressure
    regime: list[int] = msgspec.field(default_factory=lambda: [0, 0, 0])  # -1, 0, +1


# --- keylevels ---


class KeyLevelState(msgspec.Struct, kw_only=True):
    armed: list[bool]


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
