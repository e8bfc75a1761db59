"""Keeps notification secrets (bot tokens, webhook tokens, SMTP passwords) out of every log line.

Apprise logs full request URLs at DEBUG (``Telegram POST URL: https://api.telegram.org/bot<token>``)
and exceptions from ``requests`` repeat them, so redacting only our own messages is not enough.
``install_log_redaction`` wraps the process-wide log record factory: every record, from any logger
and for any handler added later, is redacted once when it is created.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

MASK = "***"

# Secrets that look the same whoever logs them, even before we registered the exact value.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # user:password@ in any URL
    (re.compile(r"(?P<pre>[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@", re.I), rf"\g<pre>{MASK}@"),
    # Telegram bot token: <bot id>:<35 chars>
    (re.compile(r"\b(?:bot)?\d{5,}:[A-Za-z0-9_-]{20,}"), MASK),
    # Discord webhook: /webhooks/<id>/<token> and discord://<id>/<token>
    (re.compile(r"(?P<pre>/webhooks/\d+/)[A-Za-z0-9_.-]+"), rf"\g<pre>{MASK}"),
    (re.compile(r"(?P<pre>discord://[^/\s]+/)[A-Za-z0-9_.-]+"), rf"\g<pre>{MASK}"),
)

_MIN_SECRET_LEN = 4  # shorter values would mask ordinary words


class SecretRedactor:
    """Replaces registered secret values and well-known token shapes with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            merged = set(self._secrets)
            merged.update(s for s in secrets if s and len(s) >= _MIN_SECRET_LEN)
            # Longest first, so a URL is masked whole before its token would be.
            self._secrets = sorted(merged, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class RedactingFilter(logging.Filter):
    """A logging filter for handlers: rewrites the record's message and exception text."""

    def __init__(self, redactor: SecretRedactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record, self.redactor)
        return True


def redact_record(record: logging.LogRecord, redactor: SecretRedactor) -> None:
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a bad %-format in someone's log call
        message = f"{record.msg!r} {record.args!r}"
    record.msg = redactor.redact(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redactor.redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redactor.redact(record.stack_info)


_install_lock = threading.Lock()
_installed: SecretRedactor | None = None


def install_log_redaction(redactor: SecretRedactor) -> SecretRedactor:
    """Redact every log record in this process; returns the active redactor.

    Installing twice keeps one factory wrapper and merges nothing: callers share the first
    redactor (``global_redactor()``) and add their secrets to it.
    """
    global _installed  # noqa: PLW0603 - one record factory per process by nature
    with _install_lock:
        if _installed is not None:
            return _installed
        previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            redact_record(record, redactor)
            return record

        logging.setLogRecordFactory(factory)
        _installed = redactor
        return redactor


def global_redactor() -> SecretRedactor:
    """The process-wide redactor, installed on first use."""
    if _installed is not None:
        return _installed
    return install_log_redaction(SecretRedactor())
