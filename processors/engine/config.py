"""Engine configuration: per-asset model and detector settings with documented defaults.

Every number here is explained in docs/model.md. USD amounts are per asset because a
$1M liquidation window is noise for BTC and an event for a small-cap; ``EngineConfig.default()``
scales them from the BTC values with ``usd_scale``.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from liqwatch.schema import Intensity


class GridConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    bucket_bp: float = 10.0  # width of one price bucket, in basis points (log-spaced grid)
    span_log: float = 0.7  # the grid covers price × e^±span_log around its centre (×0.5 … ×2)


class ModelConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Estimated liquidation levels from open-interest changes."""

    # (leverage, share of new open interest)
    tiers: tuple[tuple[float, float], ...] = (
        (5.0, 0.15),
        (10.0, 0.30),
        (25.0, 0.25),
        (50.0, 0.20),
        (100.0, 0.10),
    )
    mmr: float = 0.005  # maintenance margin rate
    half_life_h: float = 48.0  # voluntary closes are invisible: levels fade with this half-life
    fresh_half_life_s: float = 600.0  # a fast-fading copy tells new positions from old ones
    removal: str = "layer"  # OI falls remove ΔOI from the layer; or "open_interest" (ΔOI/OI)
    split: str = "price_direction"  # or "even"
    direction_bias: float = 0.2  # price up over the interval ⇒ long share 0.5 + bias
    direction_full_bp: float = 10.0  # move (bp) at which the bias is fully applied
    direction_window_s: int = 60  # move measured over this horizon (0: since the last poll)


class RealizedConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    timeframes_s: tuple[int, int, int] = (60, 300, 3600)  # decay time constants
    tumbling_s: int = 60  # exact totals per window, emitted as HeatmapSnapshot


class ClusterConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    window_pct: float = 6.0  # density distribution taken within ±window_pct of price
    smooth_buckets: int = 3  # boxcar smoothing of the density before scoring
    z_dim: float = 1.5
    z_medium: float = 2.0
    z_bright: float = 2.5  # ≤ sqrt((1 − p)/p): two tier bands can both be bright
    hysteresis_z: float = 0.5  # a tier is kept until z falls this far below its threshold
    min_share: float = 0.03  # of the side's notional inside the window
    min_usd: float = 1_000_000.0  # smaller bands are not clusters, whatever their z-score
    dissolve_ratio: float = 0.5  # an announced cluster below this share of its peak dissolved
    eval_ms: int = 1000  # how often clusters are recomputed (event time)
    reach_pct: float = 5.0  # cluster-shift alerts only for clusters this close to price
    form_fresh_share: float = 0.6  # "formed" only if this share of the band is new positions
    form_side_share: float = 0.55  # … and its side got this share of the recent new positions
    form_largest_share: float = 0.0  # … and its new notional is this × the side's largest
    form_hold_s: int = 20  # … and all of that held for this long (the burst's side shows)
    dominant_margin: float = 1.25  # a new dominant cluster must beat the old one by this factor
    miss_evals: int = 3  # evaluations a cluster may be missing before it counts as gone

    def tier_threshold(self, tier: Intensity) -> float:
        return {Intensity.DIM: self.z_dim, Intensity.MEDIUM: self.z_medium}.get(tier, self.z_bright)


class ApproachConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    distance_pct: float = 0.5  # price within this distance of a bright cluster's near edge
    invalidation_pct: float = 1.5  # price moving this far away from the cluster invalidates
    ttl_s: int = 1800  # unresolved approaches expire after this
    rearm_pct: float = 1.5  # after resolving, price must leave this far before re-alerting


class SweepConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    min_tier: Intensity = Intensity.MEDIUM  # clusters at least this intense can be swept
    confirm_window_s: int = 10  # T: realized liquidations in the band within ±T s confirm
    confirm_share: float = 0.3  # realized ≥ share × estimated notional consumed
    confirm_min_usd: float = 100_000.0  # … or at least this much realized in the band
    sampled_busy_seconds: int = 6  # … or a sampled feed showed band liquidations in 6 seconds
    alert_unconfirmed: bool = False  # unconfirmed sweeps are signals only, not alerts


class CascadeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    window_s: int = 10  # W: sliding window of realized notional
    bin_ms: int = 100  # resolution of the sliding window
    floor_usd: float = 2_000_000.0
    k: float = 5.0  # threshold = max(floor, k × (median + MAD)) of window notional, last hour
    baseline_s: int = 3600
    dominance: float = 0.7  # one side's share of window notional
    min_move_pct: float = 0.1  # price moved at least this far in the forcing direction over W
    min_events: int = 3
    max_single_share: float = 0.5  # a single liquidation above this share is a whale, not a cascade
    quiet_s: int = 30  # Q: ended after this long below exit_ratio × threshold
    exit_ratio: float = 0.5
    escalate_factor: float = 2.0  # window notional ×2 of the last level ⇒ escalated
    implied_min_seconds: int = 3  # sampled feed busy for this many seconds ⇒ trust the OI fall


class PressureConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enter: float = 2.0  # |pressure| ≥ enter ⇒ directional
    exit: float = 1.0  # |pressure| < exit ⇒ neutral again (hysteresis)
    history: int = 240  # samples of (short − long) kept per timeframe, one per timeframe / 4
    min_samples: int = 20
    min_std_usd: float = 50_000.0  # floor on the rolling std so a dead market is not "extreme"
    invalidation_pct: float = 1.0


class KeyLevelConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    levels: tuple[float, ...] = ()
    band_pct: float = 0.3  # band around each level
    min_usd: float = 500_000.0  # 1 m realized notional inside the band that counts as a spike
    rearm_ratio: float = 0.5  # re-armed once activity falls below this share of min_usd


class StalenessConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Expected gap between two messages from a venue (any channel of that venue).
    cadence_ms: dict[str, int] = msgspec.field(
        default_factory=lambda: {
            "binance": 1000,
            "binance_coinm": 1000,
            "bybit": 500,
            "okx": 1000,
            "deribit": 5000,
            "bitmex": 5000,
        }
    )
    default_cadence_ms: int = 2000
    stale_factor: float = 10.0  # silent for factor × cadence ⇒ stale
    min_stale_ms: int = 10_000


class AssetConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    grid: GridConfig = msgspec.field(default_factory=GridConfig)
    model: ModelConfig = msgspec.field(default_factory=ModelConfig)
    realized: RealizedConfig = msgspec.field(default_factory=RealizedConfig)
    cluster: ClusterConfig = msgspec.field(default_factory=ClusterConfig)
    approach: ApproachConfig = msgspec.field(default_factory=ApproachConfig)
    sweep: SweepConfig = msgspec.field(default_factory=SweepConfig)
    cascade: CascadeConfig = msgspec.field(default_factory=CascadeConfig)
    pressure: PressureConfig = msgspec.field(default_factory=PressureConfig)
    key_levels: KeyLevelConfig = msgspec.field(default_factory=KeyLevelConfig)
    staleness: StalenessConfig = msgspec.field(default_factory=StalenessConfig)
    heatmap_range_pct: float = 25.0  # estimated levels within this range go into snapshots

    def scaled(self, usd_scale: float) -> AssetConfig:
        """The same settings with every USD floor multiplied by ``usd_scale``."""
        s = msgspec.structs.replace
        return s(
            self,
            sweep=s(self.sweep, confirm_min_usd=self.sweep.confirm_min_usd * usd_scale),
            cluster=s(self.cluster, min_usd=self.cluster.min_usd * usd_scale),
            cascade=s(self.cascade, floor_usd=self.cascade.floor_usd * usd_scale),
            pressure=s(self.pressure, min_std_usd=self.pressure.min_std_usd * usd_scale),
            key_levels=s(self.key_levels, min_usd=self.key_levels.min_usd * usd_scale),
        )


# Relative size of each asset's liquidation flow (BTC = 1), for scaling the USD floors.
DEFAULT_USD_SCALE: dict[str, float] = {"BTC": 1.0, "ETH": 0.5, "SOL": 0.15, "XRP": 0.1}
OTHER_ASSET_SCALE = 0.05


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    assets: dict[str, AssetConfig] = msgspec.field(default_factory=dict)
    fallback: AssetConfig = msgspec.field(default_factory=lambda: AssetConfig().scaled(0.05))

    @classmethod
    def default(cls) -> EngineConfig:
        base = AssetConfig()
        assets = {a: base.scaled(scale) for a, scale in DEFAULT_USD_SCALE.items()}
        return cls(assets=assets, fallback=base.scaled(OTHER_ASSET_SCALE))

    def for_asset(self, asset: str) -> AssetConfig:
        return self.assets.get(asset, self.fallback)

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any]) -> EngineConfig:
        """The defaults with per-asset changes, e.g. from a settings file:
        ``{"BTC": {"cascade": {"floor_usd": 3e6}}, "*": {"sweep": {"confirm_window_s": 5}}}``
        ("*" changes every asset). Unknown names fail with msgspec's message naming them."""
        base = cls.default()
        every = overrides.get("*", {})
        names = set(base.assets) | {a for a in overrides if a != "*"}
        assets = {a: _merged(base.for_asset(a), every, overrides.get(a, {})) for a in sorted(names)}
        return cls(assets=assets, fallback=_merged(base.fallback, every, {}))

    def with_key_levels(self, levels: dict[str, list[float]]) -> EngineConfig:
        """Adds the users' key levels (from settings) to the per-asset configs."""
        assets = dict(self.assets)
        for asset, prices in levels.items():
            cfg = self.for_asset(asset)
            kl = msgspec.structs.replace(cfg.key_levels, levels=tuple(sorted(prices)))
            assets[asset] = msgspec.structs.replace(cfg, key_levels=kl)
        return msgspec.structs.replace(self, assets=assets)

    def validate(self) -> None:
        """Raises ValueError naming the first setting that cannot work."""
        for name, cfg in [*self.assets.items(), ("<fallback>", self.fallback)]:
            _validate_asset(name, cfg)


def _merged(cfg: AssetConfig, *changes: dict[str, Any]) -> AssetConfig:
    data = msgspec.to_builtins(cfg)
    for change in changes:
        for section, values in change.items():
            if isinstance(values, dict) and isinstance(data.get(section), dict):
                data[section] = {**data[section], **values}
            else:
                data[section] = values
    return msgspec.convert(data, AssetConfig)


def _validate_asset(name: str, cfg: AssetConfig) -> None:
    weights = sum(w for _, w in cfg.model.tiers)
    checks = [
        (cfg.grid.bucket_bp > 0, "grid.bucket_bp must be > 0"),
        (math.isclose(weights, 1.0, abs_tol=1e-6), "model.tiers weights must sum to 1"),
        (all(lev > 1 for lev, _ in cfg.model.tiers), "model.tiers leverage must be > 1"),
        (0 <= cfg.model.mmr < 0.1, "model.mmr must be in [0, 0.1)"),
        (cfg.model.split in ("price_direction", "even"), "model.split: price_direction|even"),
        (cfg.model.removal in ("layer", "open_interest"), "model.removal: layer|open_interest"),
        (cfg.cascade.window_s * 1000 % cfg.cascade.bin_ms == 0, "cascade.window_s / bin_ms"),
        (1000 % cfg.cascade.bin_ms == 0, "cascade.bin_ms must divide 1000"),
        (0.5 < cfg.cascade.dominance <= 1, "cascade.dominance must be in (0.5, 1]"),
        (cfg.pressure.exit < cfg.pressure.enter, "pressure.exit must be < pressure.enter"),
        (
            cfg.cluster.z_dim < cfg.cluster.z_medium < cfg.cluster.z_bright,
            "cluster z tiers must increase",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"engine config for {name}: {message}")
