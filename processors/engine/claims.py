"""Turns detector events into signals, alert claims and alert updates (titles, summaries)."""

from __future__ import annotations

from liqwatch.schema import (
    AlertKind,
    AlertStatus,
    AlertUpdate,
    CascadePhase,
    CascadeSignal,
    Intensity,
    Severity,
    Side,
    SweepSignal,
)
from processors.engine.alerts import Claim, pct, px, side_of, usd
from processors.engine.approach import ApproachResolution
from processors.engine.cascade import CascadeEvent, venue_names
from processors.engine.common import LONG, MODEL
from processors.engine.keylevels import KeyLevelHit
from processors.engine.pressure import TIMEFRAME_NAMES, PressureShift
from processors.engine.state import OpenApproach
from processors.engine.sweep import SweepResult
from processors.engine.tracker import ShiftEvent

FORCED = {Side.LONG: "forced selling", Side.SHORT: "forced buying"}


def _where(side: Side) -> str:
    return "below" if side is Side.LONG else "above"


# --- cascade -------------------------------------------------------------------------------


def cascade_signal(asset: str, e: CascadeEvent, window_s: int) -> CascadeSignal:
    r = e.run
    return CascadeSignal(
        asset=asset,
        ts=e.ts,
        model=MODEL,
        cascade_id=r.cascade_id,
        phase=e.phase,
        side=side_of(r.side),
        started_at=r.started_at,
        window_notional_usd=r.window,
        total_notional_usd=r.total,
        events=r.events,
        venues=venue_names(r.venues_mask),
        price_start=r.price_start,
        price_now=e.price_now,
        peak_rate_usd_s=r.peak_rate,
        duration_ms=(r.last_event if e.phase is CascadePhase.ENDED else e.ts) - r.started_at,
    )


def cascade_stats(e: CascadeEvent) -> dict[str, float]:
    r = e.run
    venues = len(venue_names(r.venues_mask))
    return {
        "window_notional_usd": r.window,
        "total_notional_usd": r.total,
        "events": float(r.events),
        "venues": float(venues),
        "confidence": min(1.0, 0.5 + 0.25 * (venues - 1)),
        "threshold_usd": r.threshold,
        "peak_rate_usd_s": r.peak_rate,
        "price_start": r.price_start,
        "price_move_pct": (e.price_now / r.price_start - 1) * 100 if r.price_start else 0.0,
        "duration_s": (e.ts - r.started_at) / 1000.0,
    }


def cascade_claim(asset: str, e: CascadeEvent, window_s: int) -> Claim:
    r = e.run
    side = side_of(r.side)
    stats = cascade_stats(e)
    venues = int(stats["venues"])
    critical = r.window >= 3 * r.threshold or (venues >= 2 and r.window >= 2 * r.threshold)
    move = stats["price_move_pct"]
    return Claim(
        alert_id=r.cascade_id,
        kind=AlertKind.CASCADE,
        subkind="started",
        side=side,
        timeframe=f"{window_s}s",
        severity=Severity.CRITICAL if critical else Severity.WARNING,
        invalidation=r.price_start,
        ts_event=r.started_at,
        title=f"{asset} {side.value} liquidation cascade: {usd(r.window)} in {window_s}s",
        summary=(
            f"{side.value.capitalize()}s are being force-closed on {venues} venue(s): "
            f"{usd(r.window)} in {window_s}s, price {px(r.price_start)} → {px(e.price_now)} "
            f"({pct(move)}), {FORCED[side]}. Invalidation: back "
            f"{'above' if side is Side.LONG else 'below'} {px(r.price_start)}."
        ),
        notional_usd=r.total,
        details=stats,
    )


def cascade_update(e: CascadeEvent) -> AlertUpdate:
    r = e.run
    stats = cascade_stats(e)
    if e.phase is CascadePhase.ENDED:
        stats["duration_s"] = (r.last_event - r.started_at) / 1000.0
        note = (
            f"ended after {stats['duration_s']:.0f}s: {usd(r.total)} from {r.events} "
            f"liquidations on {int(stats['venues'])} venue(s), price {pct(stats['price_move_pct'])}"
            f", peak {usd(r.peak_rate)}/s"
        )
        status = AlertStatus.ENDED
    else:
        note = f"escalated: {usd(r.window)} in the window, {usd(r.total)} so far"
        status = AlertStatus.OPEN
    return AlertUpdate(
        alert_id=r.cascade_id,
        seq=r.phase_seq,
        ts=e.ts,
        status=status,
        subkind=e.phase.value,
        note=note,
        price=e.price_now,
        details=stats,
    )


# --- sweep ---------------------------------------------------------------------------------


def sweep_signal(asset: str, res: SweepResult) -> SweepSignal:
    p = res.sweep
    return SweepSignal(
        asset=asset,
        ts=res.ts,
        model=MODEL,
        side=side_of(p.side),
        band_lo=p.band_lo,
        band_hi=p.band_hi,
        estimated_notional_usd=p.estimated_usd,
        realized_notional_usd=res.realized_usd,
        confirmed=res.confirmed,
        price_before=p.price_before,
        price_after=p.price_after,
    )


def sweep_claim(asset: str, res: SweepResult) -> Claim:
    p = res.sweep
    side = side_of(p.side)
    # A swept long cluster is invalidated by price reclaiming the band (and vice versa).
    invalidation = p.band_hi if p.side == LONG else p.band_lo
    state = "confirmed" if res.confirmed else "unconfirmed"
    return Claim(
        alert_id=f"sweep-{asset}-{side.value}-{p.touched_at}-{p.cid}",
        kind=AlertKind.SWEEP,
        subkind=state,
        side=side,
        timeframe="levels",
        severity=Severity.WARNING if res.confirmed else Severity.INFO,
        invalidation=invalidation,
        ts_event=p.crossed_at,
        title=f"{asset} {side.value} cluster swept {px(p.band_lo)}–{px(p.band_hi)}",
        summary=(
            f"Price went through the {side.value} liquidation cluster {px(p.band_lo)}–"
            f"{px(p.band_hi)} ({px(p.price_before)} → {px(p.price_after)}): ~"
            f"{usd(p.estimated_usd)} estimated consumed, {usd(res.realized_usd)} realized "
            f"({state}). Invalidation: back {'above' if p.side == LONG else 'below'} "
            f"{px(invalidation)}."
        ),
        intensity=p.tier,
        band=(p.band_lo, p.band_hi),
        notional_usd=p.estimated_usd,
        details={
            "estimated_usd": p.estimated_usd,
            "realized_usd": res.realized_usd,
            "confirmed": float(res.confirmed),
            "zscore": p.zscore,
            "price_before": p.price_before,
            "price_after": p.price_after,
            "entered_at": float(p.touched_at),
        },
    )


# --- cluster shift -------------------------------------------------------------------------


def shift_claim(asset: str, e: ShiftEvent, band: tuple[float, float], price: float) -> Claim:
    c = e.cluster
    side = side_of(c.side)
    lo, hi = band
    # The cluster stops mattering once price trades through its far edge (levels consumed).
    far = lo if c.side == LONG else hi
    distance = (price - hi) / price * 100 if c.side == LONG else (lo - price) / price * 100
    what = {
        "formed": "formed",
        "grew": f"grew {e.previous_tier.value if e.previous_tier else ''} → {c.tier}",
        "faded": f"faded {e.previous_tier.value if e.previous_tier else ''} → {c.tier}",
        "dissolved": "dissolved without being swept",
        "moved": "is now the dominant cluster",
    }[e.subkind]
    moved = ""
    if e.moved_from:
        moved = f" (was {px(e.moved_from[0])}–{px(e.moved_from[1])})"
    intensity = c.tier if c.tier is not None else Intensity.DIM
    notional = c.band_usd if e.subkind == "dissolved" else c.notional
    severity = Severity.WARNING if e.subkind in ("formed", "grew") else Severity.INFO
    return Claim(
        alert_id=f"cluster_shift-{asset}-{side.value}-{e.ts}-{e.subkind}-{c.lo}",
        kind=AlertKind.CLUSTER_SHIFT,
        subkind=e.subkind,
        side=side,
        timeframe="levels",
        severity=severity,
        invalidation=far,
        ts_event=e.ts,
        title=f"{asset} {side.value} liquidation cluster {what} at {px(lo)}–{px(hi)}",
        summary=(
            f"Estimated {side.value} liquidations ~{usd(notional)} at {px(lo)}–{px(hi)}, "
            f"{distance:.1f}% {_where(side)} price {px(price)}{moved}: {e.subkind}, "
            f"intensity {intensity.value}. Invalidation: price through {px(far)}."
        ),
        intensity=intensity,
        band=band,
        notional_usd=notional,
        details={
            "zscore": c.peak_z,
            "distance_pct": distance,
            "first_seen": float(c.first_seen),
            "peak_usd": c.peak_usd,
        },
    )


# --- approach ------------------------------------------------------------------------------


def approach_claim(asset: str, a: OpenApproach) -> Claim:
    side = side_of(a.side)
    distance = abs(a.price_at - a.near) / a.price_at * 100
    return Claim(
        alert_id=a.alert_id,
        kind=AlertKind.APPROACH,
        subkind="approaching",
        side=side,
        timeframe="levels",
        severity=Severity.WARNING,
        invalidation=a.invalidation,
        ts_event=a.created_at,
        title=f"{asset} nearing {side.value} liquidation cluster {px(a.band_lo)}–{px(a.band_hi)}",
        summary=(
            f"Price {px(a.price_at)} is {distance:.2f}% from ~{usd(a.notional)} of estimated "
            f"{side.value} liquidations at {px(a.band_lo)}–{px(a.band_hi)}; a sweep would add "
            f"{FORCED[side]}. Invalidation: {px(a.invalidation)}."
        ),
        intensity=Intensity.BRIGHT,
        band=(a.band_lo, a.band_hi),
        notional_usd=a.notional,
        details={"distance_pct": distance, "zscore": a.zscore},
    )


def approach_update(r: ApproachResolution) -> AlertUpdate:
    notes = {
        AlertStatus.SWEPT: "cluster swept",
        AlertStatus.INVALIDATED: "price moved away past the invalidation level",
        AlertStatus.EXPIRED: "expired without a sweep",
    }
    return AlertUpdate(
        alert_id=r.approach.alert_id,
        seq=1,
        ts=r.ts,
        status=r.status,
        subkind=r.status.value,
        note=notes.get(r.status, r.status.value),
        price=r.price,
        details={"minutes_open": (r.ts - r.approach.created_at) / 60_000},
    )


# --- pressure and key levels ---------------------------------------------------------------


def pressure_claim(asset: str, s: PressureShift, now: int, price: float, inv_pct: float) -> Claim:
    tf = TIMEFRAME_NAMES[s.timeframe]
    side = Side.SHORT if s.direction > 0 else Side.LONG
    up = s.direction > 0
    invalidation = price * (1 - inv_pct / 100) if up else price * (1 + inv_pct / 100)
    agreement = "conflicted" if s.conflicted else f"agreement {s.agreement:.0%}"
    return Claim(
        alert_id=f"pressure-{asset}-{side.value}-{now}-{tf}",
        kind=AlertKind.PRESSURE,
        subkind="upward" if up else "downward",
        side=side,
        timeframe=tf,
        severity=Severity.WARNING if s.agreement == 1.0 else Severity.INFO,
        invalidation=invalidation,
        ts_event=now,
        title=f"{asset} {tf} liquidation pressure turned {'up' if up else 'down'}",
        summary=(
            f"{side.value.capitalize()}s dominate {tf} liquidations ({usd(abs(s.x_usd))} net, "
            f"{s.pressure:+.1f}σ), {FORCED[side]}; {agreement} across timeframes. "
            f"Invalidation: {px(invalidation)}."
        ),
        notional_usd=abs(s.x_usd),
        details={
            "pressure": s.pressure,
            "agreement": s.agreement,
            "conflicted": float(s.conflicted),
        },
    )


def key_level_claim(asset: str, hit: KeyLevelHit, now: int, price: float) -> Claim:
    side = Side.LONG if hit.long_usd >= hit.short_usd else Side.SHORT
    total = hit.long_usd + hit.short_usd
    # Price leaving the band on the far side from the liquidated positions ends the story.
    invalidation = hit.band_hi if side is Side.LONG else hit.band_lo
    return Claim(
        alert_id=f"key_level-{asset}-{side.value}-{now}-{hit.level:g}",
        kind=AlertKind.KEY_LEVEL,
        subkind="spike",
        side=side,
        timeframe="1m",
        severity=Severity.WARNING,
        invalidation=invalidation,
        ts_event=now,
        title=f"{asset} liquidations spiking at key level {px(hit.level)}",
        summary=(
            f"{usd(total)} liquidated within {px(hit.band_lo)}–{px(hit.band_hi)} in the last "
            f"minute (mostly {side.value}s), price {px(price)}. Invalidation: {px(invalidation)}."
        ),
        band=(hit.band_lo, hit.band_hi),
        notional_usd=total,
        details={"level": hit.level, "long_usd": hit.long_usd, "short_usd": hit.short_usd},
    )
