"""Alert records: the reviewable claims, with everything a trader needs to judge them.

Every alert states its invalidation level (an alert that cannot is not sent), the price at the
alert, the band and intensity, open interest now and over the last hour, funding, instruments,
venue coverage with staleness, timeframe, severity, a title and a one-line summary. Alert ids
are deterministic (kind, asset, side, start time, and for clusters the band), so replays never
double-send.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from liqwatch.schema import (
    Alert,
    AlertKind,
    Intensity,
    Severity,
    Side,
    VenueCoverage,
)
from processors.engine.common import MODEL, SIDES


@dataclass(frozen=True)
class AlertContext:
    asset: str
    now: int
    price: float
    instruments: list[str]
    venues: list[VenueCoverage]
    oi_usd: float | None
    oi_delta_1h_usd: float | None
    funding: float | None


@dataclass(frozen=True)
class Claim:
    """What one detector claims; ``build_alert`` adds the context."""

    alert_id: str
    kind: AlertKind
    subkind: str
    side: Side | None
    timeframe: str
    severity: Severity
    invalidation: float
    ts_event: int
    title: str
    summary: str
    intensity: Intensity | None = None
    band: tuple[float, float] | None = None
    notional_usd: float = 0.0
    details: dict[str, float] | None = None


def side_of(k: int) -> Side:
    return SIDES[k]


def usd(x: float) -> str:
    a = abs(x)
    sign = "-" if x < 0 else ""
    if a >= 1e9:
        return f"{sign}${a / 1e9:.2f}B"
    if a >= 1e6:
        return f"{sign}${a / 1e6:.1f}M"
    if a >= 1e3:
        return f"{sign}${a / 1e3:.0f}k"
    return f"{sign}${a:.0f}"


def px(p: float) -> str:
    """A price with ~6 significant digits, thousands separated."""
    if p <= 0 or not math.isfinite(p):
        return "n/a"
    decimals = max(0, 5 - math.floor(math.log10(p)))
    return f"{p:,.{decimals}f}"


def pct(x: float) -> str:
    return f"{x:+.2f}%"


def stale_note(venues: list[VenueCoverage]) -> str:
    stale = [v.venue for v in venues if v.stale]
    return f" Stale: {', '.join(stale)}." if stale else ""


def build_alert(claim: Claim, ctx: AlertContext) -> Alert | None:
    """The full record, or None when the claim has no usable invalidation level."""
    if not math.isfinite(claim.invalidation) or claim.invalidation <= 0:
        return None
    lo, hi = claim.band if claim.band else (None, None)
    return Alert(
        alert_id=claim.alert_id,
        kind=claim.kind,
        subkind=claim.subkind,
        asset=ctx.asset,
        instruments=ctx.instruments,
        venues=ctx.venues,
        side=claim.side,
        timeframe=claim.timeframe,
        severity=claim.severity,
        intensity=claim.intensity,
        band_lo=lo,
        band_hi=hi,
        notional_usd=claim.notional_usd,
        oi_usd=ctx.oi_usd,
        oi_delta_1h_usd=ctx.oi_delta_1h_usd,
        funding_rate=ctx.funding,
        price_at_alert=ctx.price,
        invalidation=claim.invalidation,
        created_at=ctx.now,
        ts_event=claim.ts_event,
        title=claim.title,
        summary=claim.summary + stale_note(ctx.venues),
        model=MODEL,
        details=dict(claim.details or {}),
    )
