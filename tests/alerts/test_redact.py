"""Secrets never reach a log line, whoever logs them and however."""

from __future__ import annotations

import logging

import pytest

from alerts.redact import MASK, RedactingFilter, SecretRedactor, global_redactor

TG = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Telegram POST URL: https://api.telegram.org/bot{TG}/sendMessage", TG),
        ("POST https://discord.com/api/webhooks/1234/abcDEF-ghi_jkl", "abcDEF-ghi_jkl"),
        ("discord://1234/abcDEF-ghi_jkl/?format=markdown", "abcDEF-ghi_jkl"),
        ("mailto://trader:hunter2secret@smtp.example.com:587", "hunter2secret"),
    ],
)
def test_patterns_catch_unregistered_secrets(text: str, secret: str) -> None:
    out = SecretRedactor().redact(text)
    assert secret not in out and MASK in out


def test_registered_values_are_masked_anywhere() -> None:
    redactor = SecretRedactor(["sk-live-51f0", "x"])  # too-short values are not registered
    assert redactor.redact("token sk-live-51f0 x") == f"token {MASK} x"


def test_filter_rewrites_args_and_exceptions(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redact.filter")
    handler_filter = RedactingFilter(SecretRedactor(["pa55word"]))
    caplog.handler.addFilter(handler_filter)
    try:
        try:
            raise ValueError("login failed with pa55word")
        except ValueError:
            logger.exception("sending with %s", "pa55word")
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert "pa55word" not in caplog.text
    assert f"sending with {MASK}" in caplog.text and f"login failed with {MASK}" in caplog.text


def test_process_wide_redaction_covers_other_loggers(caplog: pytest.LogCaptureFixture) -> None:
    redactor = global_redactor()
    redactor.add(["s3cr3t-process-wide"])
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("apprise").debug("url %s", "mailto://u:s3cr3t-process-wide@h")
        logging.getLogger("some.lib").warning("s3cr3t-process-wide")
    assert "s3cr3t-process-wide" not in caplog.text
    assert caplog.text.count(MASK) >= 2
