from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from liqwatch.redact import RedactingFilter, redact_text, redact_url
from liqwatch.settings import KafkaSettings, NotifySettings


@pytest.mark.parametrize(
    ("url", "expected", "secret"),
    [
        ("tgram://123456:AAHsecretToken/-100200", "tgram://***", "AAHsecretToken"),
        ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV", "discord://***", "JHMHI8qBe7"),
        ("mailto://bob:hunter2@127.0.0.1:2525?to=a@b.c", "mailto://127.0.0.1:2525", "hunter2"),
        ("json://user:pw@hooks.example.com/path/tok", "json://hooks.example.com", "tok"),
    ],
)
def test_redact_url_keeps_no_secret(url: str, expected: str, secret: str) -> None:
    assert redact_url(url) == expected
    assert secret not in redact_text(f"delivering to {url} now")


def test_filter_rewrites_log_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redact")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO):
        logger.info("posting to %s", "tgram://123:SECRETTOKEN/456")
    assert "SECRETTOKEN" not in caplog.text
    assert "tgram://***" in caplog.text


def test_notify_urls_from_env_are_secret(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    urls_file = tmp_path / "urls"
    urls_file.write_text("# comment\njson://127.0.0.1/x\n")
    monkeypatch.setenv("LIQWATCH_NOTIFY_URLS", "tgram://1:tok/2 mailto://u:p@h")
    monkeypatch.setenv("LIQWATCH_NOTIFY_URLS_FILE", str(urls_file))
    settings = NotifySettings()
    urls = settings.all_urls()
    assert [u.get_secret_value() for u in urls] == [
        "tgram://1:tok/2",
        "mailto://u:p@h",
        "json://127.0.0.1/x",
    ]
    assert "tok" not in repr(settings)


def test_bad_setting_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIQWATCH_KAFKA_PARTITIONS", "zero")
    with pytest.raises(ValidationError, match="partitions"):
        KafkaSettings()
