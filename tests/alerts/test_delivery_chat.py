"""Telegram and Discord: the exact HTTP requests Apprise sends, received by a local fake that
answers like the real APIs (their hosts cannot be reached from here)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from alerts.heatmap_png import render_heatmap_png
from alerts.samples import sample_snapshots, sample_updates
from alerts.sender import Attachment
from liqwatch.schema import DeliveryStatus
from tests.alerts.conftest import MakeDispatcher
from tests.alerts.factories import make_alert
from tests.alerts.http_fakes import Recorded, RecordingServer, intercept

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
CHAT_ID = "-1001234567890"
WEBHOOK_ID = "1180000000000000001"
WEBHOOK_TOKEN = "Wh-TOKEN_abcdefghijklmnopqrstuvwxyz0123456789"


def telegram_api(request: Recorded) -> tuple[int, dict[str, str], bytes]:
    method = request.route.rsplit("/", 1)[-1]
    if not request.route.startswith(f"/bot{BOT_TOKEN}/"):
        body = {"ok": False, "error_code": 401, "description": "Unauthorized"}
        return 401, {"Content-Type": "application/json"}, json.dumps(body).encode()
    result = {
        "message_id": 4711 + len(method),
        "from": {"id": 123456789, "is_bot": True, "first_name": "liqwatch"},
        "chat": {"id": int(CHAT_ID), "title": "desk", "type": "supergroup"},
        "date": 1767228600,
    }
    if method == "sendPhoto":
        result["photo"] = [
            {
                "file_id": "AgACAgQ",
                "file_unique_id": "AQAD",
                "width": 960,
                "height": 540,
                "file_size": 70_000,
            }
        ]
    return (
        200,
        {"Content-Type": "application/json"},
        json.dumps({"ok": True, "result": result}).encode(),
    )


def discord_api(request: Recorded) -> tuple[int, dict[str, str], bytes]:
    message = {
        "id": "1190000000000000001",
        "type": 0,
        "channel_id": "1170000000000000001",
        "webhook_id": WEBHOOK_ID,
        "content": "",
        "embeds": [],
        "attachments": [],
    }
    headers = {
        "Content-Type": "application/json",
        "X-RateLimit-Remaining": "4",
        "X-RateLimit-Reset": "1767228601",
    }
    return 200, headers, json.dumps(message).encode()


@pytest.fixture
def telegram() -> Iterator[RecordingServer]:
    server = RecordingServer(responder=telegram_api).start()
    yield server
    server.stop()


@pytest.fixture
def discord() -> Iterator[RecordingServer]:
    server = RecordingServer(responder=discord_api).start()
    yield server
    server.stop()


@pytest.fixture
def chat_apis(telegram: RecordingServer, discord: RecordingServer) -> Iterator[None]:
    with intercept({"api.telegram.org": telegram, "discord.com": discord}):
        yield


async def test_telegram_sends_the_photo_with_the_html_caption(
    telegram: RecordingServer,
    chat_apis: None,
    make_dispatcher: MakeDispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    alert = make_alert()
    png = render_heatmap_png(sample_snapshots(20), alert)
    harness = await make_dispatcher([f"tgram://{BOT_TOKEN}/{CHAT_ID}"])
    harness.dispatcher.submit(alert, lambda: [Attachment("btc-heatmap.png", png)])
    assert await harness.dispatcher.join(20)
    harness.dispatcher.submit(sample_updates(alert)[1])
    assert await harness.dispatcher.join(20)

    photo, follow_up = telegram.wait_for(2)
    assert photo.original_url == f"https://api.telegram.org/bot{BOT_TOKEN}/sendPhoto"
    assert photo.method == "POST"
    form = photo.form()
    assert form["chat_id"][2].decode() == CHAT_ID
    assert form["parse_mode"][2] == b"HTML"
    caption = form["caption"][2].decode()
    assert caption.startswith("<b>🔴 BTC · Long liquidation cascade started</b>")
    assert "<b>Invalidation</b> 64,150 (+1.33%)" in caption
    filename, _ctype, data = form["photo"]
    assert (filename, data) == ("btc-heatmap.png", png)

    assert follow_up.original_url == f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage"
    sent = follow_up.json()
    assert sent["chat_id"] == int(CHAT_ID) and sent["parse_mode"] == "HTML"
    assert sent["text"].startswith("<b>🏁 BTC Cascade → ended</b>")

    assert [(r.status, r.target) for r in harness.records] == [
        (DeliveryStatus.SENT, "tgram://api.telegram.org"),
        (DeliveryStatus.SENT, "tgram://api.telegram.org"),
    ]
    assert "Telegram POST URL" in caplog.text  # the line that would carry the token...
    assert BOT_TOKEN not in caplog.text  # ...is redacted
    assert BOT_TOKEN.split(":")[1] not in caplog.text


async def test_discord_sends_a_coloured_embed_then_the_png(
    discord: RecordingServer,
    chat_apis: None,
    make_dispatcher: MakeDispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    alert = make_alert()
    png = render_heatmap_png(sample_snapshots(20), alert)
    url = f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"
    harness = await make_dispatcher([url])
    harness.dispatcher.submit(alert, [Attachment("btc-heatmap.png", png)])
    assert await harness.dispatcher.join(20)

    embed_post, file_post = discord.wait_for(2)
    expected = f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"
    assert embed_post.original_url == expected == file_post.original_url
    payload = embed_post.json()
    (embed,) = payload["embeds"]
    assert embed["title"] == "🔴 BTC · Long liquidation cascade started"
    assert embed["color"] == 0xE5484D  # red: longs liquidated
    assert "**Invalidation** 64,150 (+1.33%)" in embed["description"]
    assert "fields" not in embed
    assert payload["wait"] is True
    form = file_post.form()
    assert json.loads(form["payload_json"][2])["wait"] is True
    filename, ctype, data = form["files[0]"]
    assert (filename, ctype, data) == ("btc-heatmap.png", "image/png", png)

    (record,) = harness.records
    assert (record.status, record.target) == (DeliveryStatus.SENT, "discord://discord.com")
    assert "Discord POST URL" in caplog.text
    assert WEBHOOK_TOKEN not in caplog.text


async def test_rejected_token_is_a_failed_record_without_the_token(
    telegram: RecordingServer,
    chat_apis: None,
    make_dispatcher: MakeDispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "987654321:ZZZdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    harness = await make_dispatcher([f"tgram://{wrong}/{CHAT_ID}"])
    harness.dispatcher.submit(make_alert())
    assert await harness.dispatcher.join(20)
    (record,) = harness.records
    assert record.status is DeliveryStatus.FAILED and record.attempts == 3
    assert "Unauthorized" in record.error
    assert wrong not in record.error and wrong not in caplog.text
    assert len(telegram.requests) == 3
