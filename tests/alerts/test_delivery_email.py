"""Email through a real SMTP server: subject, HTML + plain parts, the PNG, exactly once."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from pathlib import Path

import pytest

from alerts.heatmap_png import render_heatmap_png
from alerts.render import email_text, headline
from alerts.samples import sample_snapshots, sample_updates
from alerts.sender import Attachment
from liqwatch.schema import DeliveryStatus
from tests.alerts.conftest import MakeDispatcher
from tests.alerts.factories import make_alert
from tests.plugins.smtp import SmtpServer

PASSWORD = "Sm7p-Pa55w0rd-never-logged"


def _parts(message: EmailMessage) -> dict[str, EmailMessage]:
    found: dict[str, EmailMessage] = {}
    for part in message.walk():
        if isinstance(part, EmailMessage) and not part.is_multipart():
            found[part.get_content_type()] = part
    return found


async def test_email_has_subject_html_text_and_png_and_is_sent_once(
    smtp_server: SmtpServer,
    make_dispatcher: MakeDispatcher,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    alert = make_alert()
    png = render_heatmap_png(sample_snapshots(30), alert)
    state = tmp_path / "alerter-state"
    harness = await make_dispatcher([smtp_server.url("trader", PASSWORD)], state_dir=state)

    assert harness.dispatcher.submit(alert, [Attachment("btc-heatmap.png", png)])
    assert await harness.dispatcher.join(20)
    (message,) = smtp_server.wait_for(1)

    assert message["Subject"] == headline(alert)
    assert message["To"] == "trader@example.com"
    parts = _parts(message)
    assert set(parts) == {"text/plain", "text/html", "image/png"}
    html = parts["text/html"].get_content()
    text = parts["text/plain"].get_content()
    assert "64,150 (+1.33%)" in html and "okx (partial, STALE 42 s)" in html
    assert "Invalidation 64,150 (+1.33%)" in text and "Long liquidation cascade started" in text
    assert text.replace("\r\n", "\n").strip() == email_text(alert).strip()
    assert parts["image/png"].get_filename() == "btc-heatmap.png"
    assert parts["image/png"].get_content() == png
    assert smtp_server.logins == ["trader"]  # the password did travel: AUTH succeeded

    (record,) = harness.records
    assert record.status is DeliveryStatus.SENT and record.attempts == 1
    assert record.target == f"mailto://127.0.0.1:{smtp_server.port}"
    assert (record.alert_id, record.update_seq, record.route) == (alert.alert_id, 0, "default")
    assert harness.metric("liqwatch_alerter_deliveries_total", status="sent", channel="email") == 1

    # replay in the same process: nothing sent, nothing recorded
    assert harness.dispatcher.submit(alert, [Attachment("btc-heatmap.png", png)])
    assert await harness.dispatcher.join(10)
    assert len(harness.records) == 1
    assert harness.metric("liqwatch_alerter_replays_skipped_total") == 1

    # the alerter restarts and Kafka redelivers: still nothing sent
    await harness.dispatcher.stop()
    restarted = await make_dispatcher([smtp_server.url("trader", PASSWORD)], state_dir=state)
    assert restarted.dispatcher.submit(alert)
    assert await restarted.dispatcher.join(10)
    assert restarted.records == []
    assert len(smtp_server.messages) == 1

    # a lifecycle update is a short reply, without the image
    escalated, _ = sample_updates(alert)
    assert restarted.dispatcher.submit(escalated)
    assert await restarted.dispatcher.join(20)
    follow_up = smtp_server.wait_for(2)[1]
    assert follow_up["Subject"] == f"Re: {headline(alert)}"
    assert "image/png" not in _parts(follow_up)
    assert [r.update_seq for r in restarted.records] == [1]

    apprise_lines = [r for r in caplog.records if r.name.startswith("apprise")]
    assert apprise_lines, "expected Apprise's own log lines to be captured"
    assert PASSWORD not in caplog.text
