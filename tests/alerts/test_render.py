"""Templates: every channel states the facts a trader acts on, escaped for its format."""

from __future__ import annotations

import json

import pytest

from alerts.apprise_compat import NotifyFormat, NotifyType
from alerts.render import (
    WEBHOOK_SCHEMA,
    email_html,
    email_text,
    plain_text,
    render_alert,
    render_digest,
    render_update,
)
from alerts.router import Digest
from alerts.rules import default_rules
from alerts.samples import sample_updates
from alerts.targets import Channel
from liqwatch.schema import Side
from tests.alerts.factories import make_alert, make_update

FACTS = [
    "BTC",
    "Long liquidation cascade started",  # what happened
    "63,020 – 63,400",  # band
    "$48.6M",  # size
    "64,150",  # invalidation
    "okx (partial, STALE 42 s)",  # venues with coverage and staleness
    "2/3 live",
    "2026-01-01 00:50:00 UTC",  # time
]


@pytest.mark.parametrize("channel", list(Channel))
def test_every_channel_states_the_facts(channel: Channel) -> None:
    rendered = render_alert(make_alert(), channel)
    text = rendered.title + "\n" + rendered.body
    if channel is Channel.DISCORD:
        text = text.replace("\\", "")
    for fact in FACTS:
        assert fact in text, (channel, fact)


def test_telegram_is_html_without_a_separate_title() -> None:
    rendered = render_alert(make_alert(title="Cascade <b>&</b> co"), Channel.TELEGRAM)
    assert rendered.body_format is NotifyFormat.HTML
    assert rendered.title == ""
    assert rendered.body.startswith("<b>🔴 BTC · Cascade &lt;b&gt;&amp;&lt;/b&gt; co</b>")
    assert "<b>Invalidation</b> 64,150 (+1.33%)" in rendered.body


def test_discord_embed_colour_follows_the_side() -> None:
    assert (
        render_alert(make_alert(side=Side.LONG), Channel.DISCORD).notify_type is NotifyType.FAILURE
    )
    assert (
        render_alert(make_alert(side=Side.SHORT), Channel.DISCORD).notify_type is NotifyType.SUCCESS
    )
    neutral = render_alert(make_alert(side=None), Channel.DISCORD)
    assert neutral.notify_type is NotifyType.INFO
    assert neutral.body_format is NotifyFormat.MARKDOWN
    assert "**Invalidation** 64,150" in neutral.body
    assert "\n#" not in neutral.body  # headings would become code-block fields


def test_email_html_and_text_versions() -> None:
    alert = make_alert(summary="5 < 6 & price fell")
    html = email_html(alert)
    assert "5 &lt; 6 &amp; price fell" in html
    assert "border-left:6px solid #E5484D" in html
    text = plain_text(alert)
    assert "5 < 6 & price fell" in text
    assert "Invalidation  64,150 (+1.33%)" in text
    derived = email_text(alert)  # the plain part Apprise sends next to the HTML
    assert "5 < 6 & price fell" in derived
    assert "\nInvalidation 64,150 (+1.33%)\n" in derived


def test_webhook_document_carries_the_full_record() -> None:
    alert = make_alert()
    rendered = render_alert(alert, Channel.WEBHOOK)
    document = json.loads(rendered.body)
    assert document["schema"] == WEBHOOK_SCHEMA and document["type"] == "alert"
    assert document["alert"]["alert_id"] == alert.alert_id
    assert document["alert"]["invalidation"] == 64_150.0
    assert document["alert"]["venues"][2] == {
        "venue": "okx",
        "completeness": "partial",
        "stale": True,
        "staleness_s": 42.0,
    }


def test_updates_are_short_follow_ups_pointing_at_the_alert() -> None:
    alert = make_alert()
    escalated, ended = sample_updates(alert)
    telegram = render_update(ended, alert, Channel.TELEGRAM)
    assert "🏁 BTC Cascade → ended" in telegram.body
    assert "re: Long liquidation cascade started" in telegram.body
    assert "4 min later" in telegram.body
    assert len(telegram.body) < 300
    email = render_update(escalated, alert, Channel.EMAIL)
    assert email.title == "Re: 🔴 BTC · Long liquidation cascade started"
    unknown = render_update(ended, None, Channel.OTHER)
    assert alert.alert_id in unknown.title


def test_outcome_follow_up_reads_hit_or_miss() -> None:
    alert = make_alert()
    outcome = make_update(
        alert,
        seq=1015,
        subkind="outcome",
        price=62_000.0,
        details={
            "horizon_min": 15.0,
            "price_after": 62_000.0,
            "max_favourable_pct": 2.1,
            "max_adverse_pct": 0.4,
            "hit": 1.0,
        },
    )
    rendered = render_update(outcome, alert, Channel.OTHER)
    assert rendered.title == "📏 BTC Cascade outcome after 15 min: hit"
    assert "favourable 2.10%" in rendered.body and "adverse 0.40%" in rendered.body


def test_digest_lists_the_folded_alerts() -> None:
    route = default_rules().routes[0]
    alerts = [make_alert(alert_id=f"x{i}", asset=a) for i, a in enumerate(["BTC", "ETH"])]
    digest = Digest(route, 0, 60_000, alerts, more=3)
    for channel in Channel:
        rendered = render_digest(digest, channel)
        assert "5 more alerts in 1 min" in rendered.title
        body = rendered.body
        if channel is Channel.WEBHOOK:
            document = json.loads(body)
            assert document["alert_ids"] == ["x0", "x1"] and document["more"] == 3
        else:
            assert "ETH" in body and "and 3 more" in body
