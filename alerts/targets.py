"""Notification targets: one Apprise service each, with a redacted name and a stable key.

A target's ``name`` (``scheme://host``) is what goes into Delivery records and logs; the URL itself
and its tokens never leave this module except to Apprise.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from alerts.apprise_compat import Apprise, AppriseAsset, AppriseConfig, NotifyBase, NotifyFormat
from alerts.redact import SecretRedactor


class Channel(enum.StrEnum):
    TELEGRAM = "telegram"
    DISCORD = "discord"
    EMAIL = "email"
    WEBHOOK = "webhook"
    OTHER = "other"


# Channels that carry the heatmap PNG (a JSON webhook would inline it as base64: too heavy).
ATTACHMENT_CHANNELS = frozenset({Channel.TELEGRAM, Channel.DISCORD, Channel.EMAIL})

_CHANNEL_BY_SCHEME = {
    "tgram": Channel.TELEGRAM,
    "discord": Channel.DISCORD,
    "mailto": Channel.EMAIL,
    "mailtos": Channel.EMAIL,
    "json": Channel.WEBHOOK,
    "jsons": Channel.WEBHOOK,
}

_HOSTNAME = re.compile(r"^(localhost|[0-9.]+|\[[0-9a-f:]+\]|([a-z0-9-]+\.)+[a-z0-9-]+)$", re.I)


class TargetError(ValueError):
    """A notification URL or config that Apprise cannot use (message never holds the secret)."""


@dataclass(frozen=True)
class Target:
    name: str  # redacted: scheme://host[:port]
    key: str  # stable id for the sent-ids store: a hash, never the URL
    channel: Channel
    service: NotifyBase = field(compare=False, repr=False)
    tags: frozenset[str] = frozenset()

    def apprise(self) -> Apprise:
        """A fresh Apprise holding just this target's service."""
        app = Apprise(asset=self.service.asset)
        app.add(self.service)
        return app

    @property
    def supports_attachments(self) -> bool:
        return self.channel in ATTACHMENT_CHANNELS and bool(self.service.attachment_support)


def service_url(service: NotifyBase, *, privacy: bool = False) -> str:
    return str(service.url(privacy=privacy))  # type: ignore[no-untyped-call]


def scheme_of(service: NotifyBase) -> str:
    return service_url(service, privacy=True).split("://", 1)[0].lower()


def channel_of(service: NotifyBase) -> Channel:
    return _CHANNEL_BY_SCHEME.get(scheme_of(service), Channel.OTHER)


def redacted_name(service: NotifyBase) -> str:
    """``scheme://host[:port]``; for services whose URL host is a token, the API host."""
    scheme = scheme_of(service)
    api = getattr(type(service), "notify_url", None)
    if isinstance(api, str) and api.startswith("http"):
        return f"{scheme}://{urlsplit(api).hostname}"
    host = str(getattr(service, "smtp_host", "") or getattr(service, "host", "") or "")
    if not _HOSTNAME.match(host):
        return f"{scheme}://redacted"
    port = getattr(service, "port", None)
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def service_secrets(service: NotifyBase) -> list[str]:
    """Every private value of a service (tokens, passwords) plus its full URL."""
    secrets = [service_url(service)]
    specs = {**service.template_tokens, **service.template_args}
    for key, spec in specs.items():
        if not isinstance(spec, dict) or not spec.get("private"):
            continue
        value = getattr(service, str(spec.get("map_to", key)), None)
        if isinstance(value, str):
            secrets.append(value)
    password = getattr(service, "password", None)
    if isinstance(password, str):
        secrets.append(password)
    return secrets


def target_key(service: NotifyBase) -> str:
    # A hash of a high-entropy URL cannot be turned back into the token.
    return hashlib.sha256(service_url(service).encode()).hexdigest()[:16]


def make_target(service: NotifyBase, redactor: SecretRedactor) -> Target:
    redactor.add(service_secrets(service))
    service = _prefer_embeds(service)
    redactor.add(service_secrets(service))
    return Target(
        name=redacted_name(service),
        key=target_key(service),
        channel=channel_of(service),
        service=service,
        tags=frozenset(str(t) for t in service.tags),
    )


def target_from_url(url: str, asset: AppriseAsset, redactor: SecretRedactor, label: str) -> Target:
    redactor.add([url])
    service = Apprise.instantiate(url, asset=asset)
    if not isinstance(service, NotifyBase):
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        raise TargetError(f"{label}: not a usable Apprise URL (scheme {scheme!r})")
    return make_target(service, redactor)


def targets_from_urls(
    urls: Iterable[str], asset: AppriseAsset, redactor: SecretRedactor, source: str
) -> list[Target]:
    return [
        target_from_url(url, asset, redactor, f"{source} URL #{i + 1}")
        for i, url in enumerate(urls)
    ]


def targets_from_config(config: AppriseConfig, redactor: SecretRedactor) -> list[Target]:
    """Every service of an Apprise config (they carry the asset the config was loaded with)."""
    return [make_target(s, redactor) for s in config.services() if isinstance(s, NotifyBase)]


def _prefer_embeds(service: NotifyBase) -> NotifyBase:
    """Discord sends embeds (title, fields, colour) only when the URL selects Markdown."""
    if channel_of(service) is not Channel.DISCORD:
        return service
    if service._format_override == NotifyFormat.MARKDOWN:
        return service
    url = re.sub(r"([?&])format=[^&]*&?", r"\1", service_url(service)).rstrip("?&")
    url += ("&" if "?" in url else "?") + "format=markdown"
    rebuilt = Apprise.instantiate(url, asset=service.asset)
    if isinstance(rebuilt, NotifyBase):
        rebuilt.tags = set(service.tags)
        return rebuilt
    return service
