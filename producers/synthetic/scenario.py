"""Scenario parameters for the synthetic market, loaded from the bundled YAML/JSON files.

Every parameter is in human units (minutes, seconds, percent, basis points, USD) so a scenario
file reads like a description of the market it produces. ``load_scenario`` validates the whole
file and raises ``ScenarioError`` naming the offending field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml

from liqwatch.schema import Side, Venue

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]

LEVERAGES = (5, 10, 25, 50, 100)
DEFAULT_LEVERAGE_MIX = {5: 0.15, 10: 0.30, 25: 0.25, 50: 0.20, 100: 0.10}
SUPPORTED_ASSETS = ("BTC", "ETH")
SUPPORTED_VENUES = (Venue.BINANCE, Venue.BYBIT, Venue.OKX)


class ScenarioError(ValueError):
    """A scenario that cannot be found or does not describe a valid market."""


class _Spec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Regime(_Spec, kw_only=True, frozen=True):
    """From ``at_min`` on: log-price volatility per √minute and drift per minute, in bp."""

    at_min: NonNegative = 0.0
    vol_bp: NonNegative
    drift_bp: float = 0.0


class Flow(_Spec, kw_only=True, frozen=True):
    """Background traders opening positions (Poisson arrivals, log-normal sizes)."""

    opens_per_min: NonNegative
    median_usd: Positive
    size_sigma: NonNegative = 1.0
    max_usd: Positive
    long_share: Fraction = 0.5
    hold_min: Positive = 20.0  # mean holding time before a voluntary close (exponential)
    leverage_mix: dict[int, NonNegative] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_LEVERAGE_MIX)
    )


class AssetSpec(_Spec, kw_only=True, frozen=True):
    asset: str
    start_price: Positive
    impact_bp_per_musd: NonNegative  # permanent price impact of 1 M USD of forced orders
    impact_tau_s: Positive = 12.0  # forced orders hit the book over ~tau seconds
    # permanent impact of 1 M USD of position opens (takers: longs buy, shorts sell)
    open_impact_bp_per_musd: NonNegative = 0.0
    base_oi_usd: NonNegative  # positions outside the simulation (never liquidated)
    funding_rate: float = 0.0001
    regimes: list[Regime]
    flow: Flow
    # ground-truth thresholds (see docs/synthetic.md, "Labels")
    cascade_min_usd: Positive
    whale_min_usd: Positive
    band_bucket_min_usd: Positive
    band_min_usd: Positive


class VenueSpec(_Spec, kw_only=True, frozen=True):
    venue: Venue
    share: Positive  # relative share of the market's positions
    latency_ms: Annotated[int, msgspec.Meta(ge=0)] = 40
    jitter_ms: Annotated[int, msgspec.Meta(ge=0)] = 20
    report_fraction: Fraction = 1.0  # OKX only: share of liquidations the feed carries


class Crowd(_Spec, kw_only=True, frozen=True):
    """A burst of positions opened at one place: builds a dense band of liquidation prices."""

    name: str
    asset: str
    side: Side
    at_min: NonNegative
    over_s: Positive = 60.0
    notional_usd: Positive
    positions: Annotated[int, msgspec.Meta(ge=1)] = 100
    leverage: int | None = None  # None: leverage_mix, else the asset's background mix
    leverage_mix: dict[int, NonNegative] | None = None
    hold_min: Positive = 600.0
    venues: list[Venue] | None = None  # None: spread by venue share


class Whale(_Spec, kw_only=True, frozen=True):
    """One large position; a later price move liquidates it in a single order."""

    asset: str
    side: Side
    at_min: NonNegative
    notional_usd: Positive
    leverage: int
    venue: Venue


class Push(_Spec, kw_only=True, frozen=True):
    """Exogenous flow that moves the price by ``move_pct`` (signed) spread over ``over_s``."""

    asset: str
    at_min: NonNegative
    move_pct: float
    over_s: Positive


class Unwind(_Spec, kw_only=True, frozen=True):
    """Voluntary closing of a share of a crowd's open positions, spread over ``over_s``."""

    crowd: str
    at_min: NonNegative
    over_s: Positive = 60.0
    fraction: Fraction = 1.0


class Outage(_Spec, kw_only=True, frozen=True):
    """A venue sends nothing at all (every channel) for ``minutes``."""

    venue: Venue
    at_min: NonNegative
    minutes: Positive


class LabelRules(_Spec, kw_only=True, frozen=True):
    chain_gap_s: Positive = 10.0
    window_s: Positive = 60.0
    cascade_min_events: Annotated[int, msgspec.Meta(ge=1)] = 8
    whale_max_share: Fraction = 0.5
    bucket_bp: Positive = 10.0
    reach_pct: Positive = 5.0
    approach_pct: Positive = 0.5
    invalidation_pct: Positive = 1.5
    dissolve_ratio: Fraction = 0.5
    onset_share: Fraction = 0.1
    # bands are found on the true density smoothed with this boxcar (buckets; 1 = raw), so a
    # band whose entry prices straddle a bucket edge is one band, as the detector sees it
    band_smooth_buckets: Annotated[int, msgspec.Meta(ge=1, le=9)] = 1
    # a band that comes into reach because price moved toward it (it was out of reach a
    # second earlier) is tracked without a formed (and dissolved) label: no positions formed
    silent_reach_entry: bool = False


class Scenario(_Spec, kw_only=True, frozen=True):
    name: str
    description: str
    seed: int
    start_ms: Annotated[int, msgspec.Meta(ge=0)]
    duration_min: Annotated[float, msgspec.Meta(ge=1, le=240)]
    step_ms: Annotated[int, msgspec.Meta(ge=10, le=1000)] = 100
    mmr: Annotated[float, msgspec.Meta(ge=0, lt=0.01)] = 0.005
    correlation: Annotated[float, msgspec.Meta(ge=-1, le=1)] = 0.8
    assets: list[AssetSpec]
    venues: list[VenueSpec]
    crowds: list[Crowd] = msgspec.field(default_factory=list)
    whales: list[Whale] = msgspec.field(default_factory=list)
    pushes: list[Push] = msgspec.field(default_factory=list)
    unwinds: list[Unwind] = msgspec.field(default_factory=list)
    outages: list[Outage] = msgspec.field(default_factory=list)
    labels: LabelRules = msgspec.field(default_factory=LabelRules)

    @property
    def duration_ms(self) -> int:
        return round(self.duration_min * 60_000)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms

    def asset(self, name: str) -> AssetSpec:
        for spec in self.assets:
            if spec.asset == name:
                return spec
        raise KeyError(name)


def scenarios_dir() -> Path:
    """The directory of bundled scenario files (package data)."""
    return Path(__file__).resolve().parent / "scenarios"


def scenario_names() -> list[str]:
    """Names of the bundled scenarios, sorted."""
    return sorted(p.stem for p in _scenario_files())


def _scenario_files() -> list[Path]:
    return [p for p in scenarios_dir().iterdir() if p.suffix in (".yaml", ".yml", ".json")]


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A bundled scenario by name (``"demo"``) or a scenario file by path."""
    path = _resolve(name_or_path)
    try:
        raw = _read(path)
        scenario = msgspec.convert(raw, Scenario, str_keys=path.suffix == ".json")
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from exc
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"invalid scenario {path}: {exc}") from exc
    _check(scenario, path)
    return scenario


def _resolve(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        if not path.is_file():
            raise ScenarioError(f"scenario file {path} does not exist")
        return path
    for candidate in _scenario_files():
        if candidate.stem == str(name_or_path):
            return candidate
    names = ", ".join(scenario_names())
    raise ScenarioError(f"unknown scenario {name_or_path!r}; bundled scenarios: {names}")


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return yaml.safe_load(text)


def _check(scenario: Scenario, path: Path) -> None:
    problems = [*_check_market(scenario), *_check_events(scenario)]
    if problems:
        raise ScenarioError(f"invalid scenario {path}: " + "; ".join(problems))


def _check_market(s: Scenario) -> list[str]:
    problems: list[str] = []
    if 1000 % s.step_ms:
        problems.append(f"step_ms {s.step_ms} must divide 1000")
    if not s.assets:
        problems.append("at least one asset is needed")
    if not s.venues:
        problems.append("at least one venue is needed")
    names = [a.asset for a in s.assets]
    if len(set(names)) != len(names):
        problems.append(f"assets listed twice: {names}")
    for spec in s.assets:
        if spec.asset not in SUPPORTED_ASSETS:
            problems.append(f"asset {spec.asset!r} is not one of {SUPPORTED_ASSETS}")
        if not spec.regimes or spec.regimes[0].at_min != 0:
            problems.append(f"{spec.asset}: the first regime must start at at_min 0")
        problems += _check_leverages(spec.asset, list(spec.flow.leverage_mix))
        if sum(spec.flow.leverage_mix.values()) <= 0:
            problems.append(f"{spec.asset}: leverage_mix weights must not all be 0")
    venues = [v.venue for v in s.venues]
    if len(set(venues)) != len(venues):
        problems.append(f"venues listed twice: {venues}")
    for v in venues:
        if v not in SUPPORTED_VENUES:
            problems.append(f"venue {v} has no synthetic frames (supported: binance, bybit, okx)")
    return problems


def _check_leverages(where: str, leverages: list[int]) -> list[str]:
    bad = [lev for lev in leverages if lev not in LEVERAGES]
    return [f"{where}: leverage {bad} not in {LEVERAGES}"] if bad else []


def _check_events(s: Scenario) -> list[str]:
    problems: list[str] = []
    assets = {a.asset for a in s.assets}
    venues = {v.venue for v in s.venues}
    crowds = [c.name for c in s.crowds]
    if len(set(crowds)) != len(crowds):
        problems.append(f"crowd names must be unique: {crowds}")
    timed: list[tuple[str, float, str | None, list[Venue]]] = [
        *((f"crowd {c.name}", c.at_min, c.asset, c.venues or []) for c in s.crowds),
        *((f"whale at {w.at_min}", w.at_min, w.asset, [w.venue]) for w in s.whales),
        *((f"push at {p.at_min}", p.at_min, p.asset, []) for p in s.pushes),
        *((f"unwind {u.crowd}", u.at_min, None, []) for u in s.unwinds),
        *((f"outage {o.venue}", o.at_min, None, [o.venue]) for o in s.outages),
    ]
    for what, at_min, asset, event_venues in timed:
        if at_min >= s.duration_min:
            problems.append(f"{what}: at_min {at_min} is past the end ({s.duration_min} min)")
        if asset is not None and asset not in assets:
            problems.append(f"{what}: asset {asset!r} is not among the scenario's assets")
        problems += [f"{what}: venue {v} is not in venues" for v in event_venues if v not in venues]
    for crowd in s.crowds:
        if crowd.leverage is not None:
            problems += _check_leverages(f"crowd {crowd.name}", [crowd.leverage])
        if crowd.leverage_mix is not None:
            problems += _check_leverages(f"crowd {crowd.name}", list(crowd.leverage_mix))
            if crowd.leverage is not None or sum(crowd.leverage_mix.values()) <= 0:
                problems.append(
                    f"crowd {crowd.name}: leverage_mix needs positive weights and no leverage"
                )
    for whale in s.whales:
        problems += _check_leverages(f"whale at {whale.at_min}", [whale.leverage])
    problems += [f"unwind: no crowd named {u.crowd!r}" for u in s.unwinds if u.crowd not in crowds]
    return problems
