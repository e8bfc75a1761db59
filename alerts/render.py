"""Message templates per channel: Telegram HTML, Discord embed (Markdown), email HTML + text,
a generic JSON webhook document, and plain text for every other Apprise service.

Each alert reads the same way everywhere: headline, what happened, level/band, size, price,
invalidation, venues with coverage and staleness, context, time. Lifecycle updates and outcomes
are short follow-ups that point back at the alert they belong to.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from alerts import formatting as fmt
from alerts.apprise_compat import NotifyFormat, NotifyType, convert_between
from alerts.outcomes import OUTCOME_SUBKIND
from alerts.router import Digest
from alerts.targets import Channel
from liqwatch.codec import to_builtins
from liqwatch.schema import Alert, AlertStatus, AlertUpdate, Side

WEBHOOK_SCHEMA = "liqwatch.alert/1"

_NOTIFY_TYPE = {
    Side.LONG: NotifyType.FAILURE,
    Side.SHORT: NotifyType.SUCCESS,
    None: NotifyType.INFO,
}
_STATUS_MARK = {
    AlertStatus.OPEN: "↪️",
    AlertStatus.SWEPT: "🎯",
    AlertStatus.INVALIDATED: "✖️",
    AlertStatus.EXPIRED: "⌛",
    AlertStatus.ENDED: "🏁",
}


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str
    body_format: NotifyFormat
    notify_type: NotifyType


def headline(alert: Alert) -> str:
    return f"{fmt.SIDE_MARK[alert.side]} {alert.asset} · {alert.title}"


# --- alerts ------------------------------------------------------------------------------


def render_alert(alert: Alert, channel: Channel) -> Rendered:
    kind = _NOTIFY_TYPE[alert.side]
    title = headline(alert)
    if channel is Channel.TELEGRAM:
        # Telegram has no title field: Apprise would repeat it above the body.
        return Rendered("", telegram_html(alert), NotifyFormat.HTML, kind)
    if channel is Channel.DISCORD:
        return Rendered(title, discord_markdown(alert), NotifyFormat.MARKDOWN, kind)
    if channel is Channel.EMAIL:
        return Rendered(title, email_html(alert), NotifyFormat.HTML, kind)
    if channel is Channel.WEBHOOK:
        return Rendered(title, webhook_json(alert), NotifyFormat.TEXT, kind)
    return Rendered(title, plain_text(alert), NotifyFormat.TEXT, kind)


def telegram_html(alert: Alert) -> str:
    esc = _esc
    lines = [f"<b>{esc(headline(alert))}</b>", esc(alert.summary), ""]
    for label, value in fmt.fact_rows(alert)[1:]:
        lines.append(f"<b>{esc(label)}</b> {esc(value)}")
    lines.append(f"<i>{esc(fmt.footer(alert))}</i>")
    return "\n".join(lines)


def discord_markdown(alert: Alert) -> str:
    # No headings on purpose: Apprise would turn them into code-block fields.
    lines = [alert.summary, ""]
    for label, value in fmt.fact_rows(alert):
        lines.append(f"**{label}** {_md(value)}")
    lines.append(f"*{_md(fmt.footer(alert))}*")
    return "\n".join(lines)


def plain_text(alert: Alert) -> str:
    lines = [headline(alert), alert.summary, ""]
    width = max(len(label) for label, _ in fmt.fact_rows(alert))
    for label, value in fmt.fact_rows(alert):
        lines.append(f"{label.ljust(width)}  {value}")
    lines.append("")
    lines.append(fmt.footer(alert))
    return "\n".join(lines)


def email_html(alert: Alert) -> str:
    colour = fmt.SIDE_COLOUR[alert.side]
    # One cell per row, label as an inline span: Apprise derives the plain-text part from
    # this HTML, and this keeps "Label value" on one line there.
    rows = "".join(
        f'<tr><td style="{_TD}"><span style="{_LABEL}">{_esc(label)}</span> {_esc(value)}</td></tr>'
        for label, value in fmt.fact_rows(alert)
    )
    return (
        f'<div style="{_BOX}">'
        f'<div style="border-left:6px solid {colour};padding:4px 12px;margin-bottom:12px">'
        f'<div style="font-size:18px;font-weight:bold">{_esc(headline(alert))}</div>'
        f'<div style="font-size:14px;color:#333">{_esc(alert.summary)}</div></div>'
        f'<table style="border-collapse:collapse;font-size:14px">{rows}</table>'
        f'<p style="font-size:12px;color:#777">{_esc(fmt.footer(alert))}</p></div>'
    )


def email_text(alert: Alert) -> str:
    """The plain-text part as mail clients get it: Apprise derives it from the HTML part."""
    text = convert_between(NotifyFormat.HTML, NotifyFormat.TEXT, email_html(alert))  # type: ignore[no-untyped-call]
    return str(text)


def webhook_json(alert: Alert) -> str:
    document = {
        "schema": WEBHOOK_SCHEMA,
        "type": "alert",
        "alert_id": alert.alert_id,
        "headline": headline(alert),
        "text": plain_text(alert),
        "alert": to_builtins(alert),
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True)


# --- lifecycle updates and outcomes ------------------------------------------------------


def render_update(update: AlertUpdate, original: Alert | None, channel: Channel) -> Rendered:
    kind = _NOTIFY_TYPE[original.side if original else None]
    subject = _update_title(update, original)
    if channel is Channel.WEBHOOK:
        return Rendered(subject, update_json(update, original), NotifyFormat.TEXT, kind)
    if channel is Channel.EMAIL:
        about = f"Re: {headline(original)}" if original else subject
        body = f"<p><b>{_esc(subject)}</b></p><p>{_esc(update_text(update, original))}</p>"
        return Rendered(about, body, NotifyFormat.HTML, kind)
    if channel is Channel.TELEGRAM:
        body = f"<b>{_esc(subject)}</b>\n{_esc(update_text(update, original))}"
        return Rendered("", body, NotifyFormat.HTML, kind)
    if channel is Channel.DISCORD:
        return Rendered(subject, _md(update_text(update, original)), NotifyFormat.MARKDOWN, kind)
    return Rendered(subject, update_text(update, original), NotifyFormat.TEXT, kind)


def _update_title(update: AlertUpdate, original: Alert | None) -> str:
    asset = original.asset if original else update.alert_id
    what = fmt.KIND_LABEL[original.kind] if original else "Alert"
    if update.subkind == OUTCOME_SUBKIND:
        horizon = int(update.details.get("horizon_min", 0))
        verdict = "hit" if update.details.get("hit", 0.0) >= 0.5 else "miss"
        return f"📏 {asset} {what} outcome after {horizon} min: {verdict}"
    mark = _STATUS_MARK.get(update.status, "↪️")
    return f"{mark} {asset} {what} → {update.subkind or update.status.value}"


def update_text(update: AlertUpdate, original: Alert | None) -> str:
    parts = []
    if update.subkind == OUTCOME_SUBKIND:
        d = update.details
        parts.append(
            f"price {fmt.price(d.get('price_after', update.price))}, favourable "
            f"{fmt.pct(d.get('max_favourable_pct', 0.0), False)}, adverse "
            f"{fmt.pct(d.get('max_adverse_pct', 0.0), False)}"
        )
    else:
        parts.append(f"at {fmt.price(update.price)}")
        if update.note:
            parts.append(update.note)
    if original is not None:
        moved = fmt.change_pct(original.price_at_alert, update.price)
        parts.append(
            f"{fmt.pct(moved)} since alert, {fmt.duration(update.ts - original.created_at)} later"
        )
        parts.append(f"re: {original.title}")
    parts.append(fmt.utc(update.ts))
    return " · ".join(parts)


def update_json(update: AlertUpdate, original: Alert | None) -> str:
    document = {
        "schema": WEBHOOK_SCHEMA,
        "type": "alert_update",
        "alert_id": update.alert_id,
        "headline": _update_title(update, original),
        "text": update_text(update, original),
        "update": to_builtins(update),
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True)


# --- flood digests -----------------------------------------------------------------------


def render_digest(digest: Digest, channel: Channel) -> Rendered:
    minutes = (digest.window_end - digest.window_start) / 60_000
    title = (
        f"liqwatch digest · {digest.total} more alerts in {minutes:.3g} min ({digest.route.name})"
    )
    lines = [f"{fmt.utc(a.created_at)[11:19]}  {headline(a)}" for a in digest.alerts]
    if digest.more:
        lines.append(f"… and {digest.more} more")
    if channel is Channel.WEBHOOK:
        document = {
            "schema": WEBHOOK_SCHEMA,
            "type": "digest",
            "route": digest.route.name,
            "window_start": digest.window_start,
            "window_end": digest.window_end,
            "alert_ids": [a.alert_id for a in digest.alerts],
            "more": digest.more,
            "text": "\n".join(lines),
        }
        return Rendered(
            title, json.dumps(document, ensure_ascii=False), NotifyFormat.TEXT, NotifyType.WARNING
        )
    if channel in (Channel.TELEGRAM, Channel.EMAIL):
        body = "<br/>".join(_esc(line) for line in lines)
        if channel is Channel.TELEGRAM:
            body = "\n".join(_esc(line) for line in lines)
        return Rendered(title, body, NotifyFormat.HTML, NotifyType.WARNING)
    if channel is Channel.DISCORD:
        return Rendered(
            title, "\n".join(_md(line) for line in lines), NotifyFormat.MARKDOWN, NotifyType.WARNING
        )
    return Rendered(title, "\n".join(lines), NotifyFormat.TEXT, NotifyType.WARNING)


# --- helpers -----------------------------------------------------------------------------

_BOX = "font-family:Helvetica,Arial,sans-serif;max-width:640px;color:#111"
_LABEL = "display:inline-block;min-width:104px;color:#555;font-weight:bold"
_TD = "padding:4px 0;vertical-align:top"


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _md(text: str) -> str:
    for char in ("\\", "*", "_", "`", "~", "|"):
        text = text.replace(char, "\\" + char)
    return text
