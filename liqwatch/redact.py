"""Keeps secrets out of logs: Apprise URLs carry tokens and passwords.

A filter on the root handlers rewrites every record's message, replacing URL credentials and
path/query tokens with ``***``. Components also redact targets themselves before recording them;
this is the safety net for third-party libraries that log URLs.
"""

from __future__ import annotations

import logging
import re

_URL = re.compile(r"\b([a-z][a-z0-9+.-]{1,20})://([^\s'\"<>]+)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``scheme://host`` only: credentials, paths (webhook ids, bot tokens) and queries dropped."""
    match = _URL.match(url.strip())
    if match is None:
        return "***"
    scheme, rest = match.group(1), match.group(2)
    host = rest.split("/", 1)[0].split("?", 1)[0]
    host = host.rsplit("@", 1)[-1]
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    # Telegram/Discord put the bot token or webhook id where a host would be: only keep real hosts
    looks_like_host = "." in name or name == "localhost" or name.startswith("[")
    return f"{scheme}://{host if looks_like_host else '***'}"


def redact_text(text: str) -> str:
    return _URL.sub(lambda m: redact_url(m.group(0)) + "/***", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_redaction() -> None:
    """Adds the filter to every root handler (and keeps it there for handlers added later)."""
    flt = RedactingFilter()
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(flt)
