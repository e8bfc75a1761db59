"""Numbers, prices, times and venue coverage as a trader reads them at a glance."""

from __future__ import annotations

import datetime as dt

from liqwatch.schema import Alert, AlertKind, Completeness, Side, VenueCoverage

KIND_LABEL = {
    AlertKind.CLUSTER_SHIFT: "Cluster shift",
    AlertKind.APPROACH: "Approach",
    AlertKind.SWEEP: "Sweep",
    AlertKind.CASCADE: "Cascade",
    AlertKind.PRESSURE: "Pressure",
    AlertKind.KEY_LEVEL: "Key level",
}

SIDE_LABEL = {Side.LONG: "longs liquidated", Side.SHORT: "shorts liquidated"}
SIDE_MARK = {Side.LONG: "🔴", Side.SHORT: "🟢", None: "⚪"}
SIDE_COLOUR = {Side.LONG: "#E5484D", Side.SHORT: "#30A46C", None: "#3E63DD"}


def usd(value: float) -> str:
    sign = "−" if value < 0 else ""
    value = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= limit:
            return f"{sign}${value / limit:.3g}{suffix}"
    return f"{sign}${value:,.0f}"


def price(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:,.2f}"
    if magnitude >= 1:
        return f"{value:,.3f}"
    return f"{value:.4g}"


def pct(value: float, signed: bool = True) -> str:
    text = f"{value:+.2f}%" if signed else f"{value:.2f}%"
    return text.replace("-", "−")


def change_pct(frm: float, to: float) -> float:
    return 0.0 if frm == 0 else (to - frm) / frm * 100.0


def utc(ts_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(ms: int) -> str:
    seconds = max(0, ms) // 1000
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def band(alert: Alert) -> str | None:
    if alert.band_lo is None or alert.band_hi is None:
        return None
    mid = (alert.band_lo + alert.band_hi) / 2
    distance = change_pct(alert.price_at_alert, mid)
    where = "above" if distance > 0 else "below"
    return f"{price(alert.band_lo)} – {price(alert.band_hi)} ({abs(distance):.2f}% {where} price)"


def invalidation(alert: Alert) -> str:
    distance = change_pct(alert.price_at_alert, alert.invalidation)
    return f"{price(alert.invalidation)} ({pct(distance)})"


def venue(cov: VenueCoverage) -> str:
    notes = []
    if cov.completeness is not Completeness.COMPLETE:
        notes.append(cov.completeness.value)
    if cov.stale:
        notes.append(f"STALE {cov.staleness_s:.0f} s")
    return f"{cov.venue} ({', '.join(notes)})" if notes else cov.venue


def venues(alert: Alert) -> str:
    if not alert.venues:
        return "no venue coverage reported"
    live = sum(1 for v in alert.venues if not v.stale)
    listed = " · ".join(venue(v) for v in alert.venues)
    return f"{listed} — {live}/{len(alert.venues)} live"


def context(alert: Alert) -> str | None:
    parts = []
    if alert.oi_usd is not None:
        delta = "" if alert.oi_delta_1h_usd is None else f" (Δ1h {usd(alert.oi_delta_1h_usd)})"
        parts.append(f"OI {usd(alert.oi_usd)}{delta}")
    if alert.funding_rate is not None:
        parts.append(f"funding {alert.funding_rate * 100:+.4f}%".replace("-", "−"))
    return " · ".join(parts) or None


def what(alert: Alert) -> str:
    side = f" — {SIDE_LABEL[alert.side]}" if alert.side else ""
    return f"{KIND_LABEL[alert.kind]} {alert.subkind}{side}"


def fact_rows(alert: Alert) -> list[tuple[str, str]]:
    """(label, value) rows shared by every channel's template, in reading order."""
    rows = [("What", what(alert))]
    level = band(alert)
    if level:
        intensity = f", {alert.intensity.value}" if alert.intensity else ""
        rows.append(("Level", f"{level}{intensity}"))
    if alert.notional_usd:
        rows.append(("Size", usd(alert.notional_usd)))
    rows.append(("Price", price(alert.price_at_alert)))
    rows.append(("Invalidation", invalidation(alert)))
    rows.append(("Venues", venues(alert)))
    ctx = context(alert)
    if ctx:
        rows.append(("Context", ctx))
    rows.append(("Time", utc(alert.created_at)))
    return rows


def footer(alert: Alert) -> str:
    return f"{alert.severity.value} · {alert.timeframe} · {alert.model} · id {alert.alert_id}"
