"""Event, signal and alert records shared by every liqwatch component.

All records are frozen msgspec structs: they are encoded to JSON for Kafka and the alert files,
and decoded again with strict typing. Times are integer milliseconds since the epoch (UTC).
Every market event keeps both the venue's time (``ts_event``) and our receive time (``ts_recv``).
"""

from __future__ import annotations

import enum
from typing import Any, Literal

import msgspec


class Venue(enum.StrEnum):
    BINANCE = "binance"
    BINANCE_COINM = "binance_coinm"
    BYBIT = "bybit"
    OKX = "okx"
    DERIBIT = "deribit"
    BITMEX = "bitmex"


class Side(enum.StrEnum):
    """The position that was liquidated (never the liquidation order's side)."""

    LONG = "long"
    SHORT = "short"


class Completeness(enum.StrEnum):
    COMPLETE = "complete"
    SAMPLED = "sampled"  # e.g. Binance: at most one liquidation per symbol per second
    PARTIAL = "partial"  # e.g. OKX: not every liquidation, not ordered


class ContractKind(enum.StrEnum):
    LINEAR = "linear"
    INVERSE = "inverse"


# --- market events -------------------------------------------------------------------------


class Liquidation(msgspec.Struct, frozen=True, kw_only=True, tag="liquidation", gc=False):
    venue: Venue
    symbol: str  # the venue's own symbol, e.g. BTCUSDT
    instrument: str  # normalized, e.g. BTC-USDT-PERP, BTC-USD-INVERSE
    asset: str  # BTC
    side: Side
    price: float  # order / bankruptcy price
    avg_price: float | None = None
    qty: float  # base units
    notional_usd: float
    completeness: Completeness
    ts_event: int
    ts_recv: int
    event_id: str


class OpenInterest(msgspec.Struct, frozen=True, kw_only=True, tag="open_interest", gc=False):
    venue: Venue
    symbol: str
    instrument: str
    asset: str
    oi_base: float
    oi_usd: float
    ts_event: int
    ts_recv: int
    event_id: str


class MarkPrice(msgspec.Struct, frozen=True, kw_only=True, tag="mark_price", gc=False):
    venue: Venue
    symbol: str
    instrument: str
    asset: str
    mark_price: float
    index_price: float | None = None
    funding_rate: float | None = None
    next_funding_time: int | None = None
    ts_event: int
    ts_recv: int
    event_id: str


MarketEvent = Liquidation | OpenInterest | MarkPrice


class EventKind(enum.StrEnum):
    LIQUIDATION = "liquidation"
    OPEN_INTEREST = "open_interest"
    MARK_PRICE = "mark_price"


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """A small batch of events of one kind for one asset from one producer (one Kafka message).

    Faust pays ~120 µs per Kafka message; envelopes keep the message rate low while the event
    rate grows with the envelope size. Every event inside keeps its own ``event_id``.
    """

    kind: EventKind
    asset: str
    producer: str
    seq: int  # per-producer sequence number, for diagnostics
    ts_flush: int
    events: list[MarketEvent]


class EnvelopeHead(msgspec.Struct, frozen=True, kw_only=True):
    """An envelope with its events left as JSON: checks the message, counts its events.

    About half the cost of a full decode, and the raw JSON kept meanwhile takes about half the
    memory of the decoded events: for what is held before it is processed (the sink, which lets
    ClickHouse parse the events, and the worker's merge).
    """

    kind: EventKind
    asset: str
    producer: str
    seq: int
    ts_flush: int
    events: list[msgspec.Raw]


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A frame or record we could not use, kept with the reason so nothing is lost silently."""

    source: str  # component that dropped it: producer/parse, worker, sink, alerter
    venue: str
    channel: str
    reason: str
    raw: str
    ts_recv: int


# --- signals -------------------------------------------------------------------------------


class Intensity(enum.StrEnum):
    DIM = "dim"
    MEDIUM = "medium"
    BRIGHT = "bright"


class Layer(enum.StrEnum):
    REALIZED = "realized"
    ESTIMATED = "estimated"


class ClusterSnapshot(msgspec.Struct, frozen=True, kw_only=True, tag="cluster"):
    asset: str
    ts: int
    model: str  # model name + version, e.g. "liqwatch-heatmap/1.0"
    layer: Layer
    side: Side
    band_lo: float
    band_hi: float
    notional_usd: float
    zscore: float
    intensity: Intensity
    mark_price: float


class HeatmapSnapshot(msgspec.Struct, frozen=True, kw_only=True, tag="heatmap"):
    """Per-asset heatmap columns at one instant: sparse (bucket index, USD) per layer and side.

    Price of bucket i is ``grid_origin * (1 + bucket_bp / 10_000) ** i``.
    """

    asset: str
    ts: int
    model: str
    grid_origin: float
    bucket_bp: float
    mark_price: float
    realized_long: list[tuple[int, float]]
    realized_short: list[tuple[int, float]]
    estimated_long: list[tuple[int, float]]
    estimated_short: list[tuple[int, float]]


class SweepSignal(msgspec.Struct, frozen=True, kw_only=True, tag="sweep"):
    asset: str
    ts: int
    model: str
    side: Side  # side of the positions in the swept cluster
    band_lo: float
    band_hi: float
    estimated_notional_usd: float
    realized_notional_usd: float  # realized liquidations seen in the band (confirmation)
    confirmed: bool
    price_before: float
    price_after: float


class CascadePhase(enum.StrEnum):
    STARTED = "started"
    ESCALATED = "escalated"
    ENDED = "ended"


class CascadeSignal(msgspec.Struct, frozen=True, kw_only=True, tag="cascade"):
    asset: str
    ts: int
    model: str
    cascade_id: str
    phase: CascadePhase
    side: Side  # side being liquidated
    started_at: int
    window_notional_usd: float
    total_notional_usd: float
    events: int
    venues: list[str]
    price_start: float
    price_now: float
    peak_rate_usd_s: float
    duration_ms: int


Signal = ClusterSnapshot | HeatmapSnapshot | SweepSignal | CascadeSignal


# --- alerts --------------------------------------------------------------------------------


class AlertKind(enum.StrEnum):
    CLUSTER_SHIFT = "cluster_shift"
    APPROACH = "approach"
    SWEEP = "sweep"
    CASCADE = "cascade"
    PRESSURE = "pressure"
    KEY_LEVEL = "key_level"


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(enum.StrEnum):
    OPEN = "open"
    SWEPT = "swept"
    INVALIDATED = "invalidated"
    EXPIRED = "expired"
    ENDED = "ended"


class VenueCoverage(msgspec.Struct, frozen=True, kw_only=True):
    venue: str
    completeness: Completeness
    stale: bool
    staleness_s: float


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    horizon_min: int
    price_after: float
    max_favourable_pct: float
    max_adverse_pct: float
    hit: bool  # price moved in the alert's direction by more than it moved against it


class Alert(msgspec.Struct, frozen=True, kw_only=True, tag="alert"):
    """The review standard: a timestamped, auditable record of what liqwatch claimed."""

    alert_id: str  # deterministic: kind + asset + start time (+ side), so replays never double-send
    kind: AlertKind
    subkind: str  # formed|grew|faded|dissolved|moved|started|escalated|ended|...
    asset: str
    instruments: list[str]
    venues: list[VenueCoverage]
    side: Side | None
    timeframe: str
    severity: Severity
    intensity: Intensity | None = None
    band_lo: float | None = None
    band_hi: float | None = None
    notional_usd: float = 0.0
    oi_usd: float | None = None
    oi_delta_1h_usd: float | None = None
    funding_rate: float | None = None
    price_at_alert: float
    invalidation: float  # an alert that cannot state its invalidation is not sent
    created_at: int  # wall-clock/event time at which liqwatch made the claim
    ts_event: int  # market time the alert refers to
    title: str
    summary: str
    model: str
    status: AlertStatus = AlertStatus.OPEN
    outcome: Outcome | None = None
    details: dict[str, float] = msgspec.field(default_factory=dict)


class AlertUpdate(msgspec.Struct, frozen=True, kw_only=True, tag="alert_update"):
    alert_id: str
    seq: int
    ts: int
    status: AlertStatus
    subkind: str
    note: str
    price: float
    details: dict[str, float] = msgspec.field(default_factory=dict)


AlertMessage = Alert | AlertUpdate


class DeliveryStatus(enum.StrEnum):
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"  # cooldown, dedupe, quiet hours or folded into a digest


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    alert_id: str
    update_seq: int  # 0 for the alert itself, n for its n-th update
    route: str
    target: str  # redacted target: scheme and host only, never a token
    status: DeliveryStatus
    attempts: int
    error: str
    ts: int


# --- recordings and ground truth -------------------------------------------------------------


class RecordedFrame(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a recording: the raw venue frame as received.

    ``channel`` is the venue's stream/topic/channel as subscribed, or for REST polls the request
    path (``/fapi/v1/openInterest``) with the JSON body as the frame.
    """

    venue: Venue
    channel: str
    ts_recv: int
    frame: Any


class LabelKind(enum.StrEnum):
    CASCADE = "cascade"
    SWEEP = "sweep"
    CLUSTER_SHIFT = "cluster_shift"
    APPROACH = "approach"
    WHALE = "whale"  # a single large liquidation that must NOT be reported as a cascade


class Label(msgspec.Struct, frozen=True, kw_only=True):
    """Ground truth from the synthetic market: what a perfect detector would report."""

    kind: LabelKind
    asset: str
    side: Side | None
    start_ms: int
    end_ms: int
    band_lo: float | None = None
    band_hi: float | None = None
    venues: list[str] = msgspec.field(default_factory=list)
    note: str = ""


class GroundTruth(msgspec.Struct, frozen=True, kw_only=True):
    scenario: str
    seed: int
    start_ms: int
    end_ms: int
    labels: list[Label]


Kind = Literal["liquidation", "open_interest", "mark_price"]
