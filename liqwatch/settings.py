"""Settings shared by several components, read from the environment (``LIQWATCH_*``).

Each component adds its own settings class next to its code; secrets are ``SecretStr`` and are
never printed. Invalid values fail at start with pydantic's message naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def default_data_dir() -> Path:
    """The user's data dir (XDG), where the embedded ClickHouse and outputs live by default."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "liqwatch"


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIQWATCH_KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = "liq."
    partitions: int = Field(default=4, ge=1)
    client_id: str = "liqwatch"


class ClickHouseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIQWATCH_CLICKHOUSE_", extra="ignore")

    # http://host:port for a server, chdb:///path for the embedded in-process backend
    url: str = "http://127.0.0.1:8123"
    database: str = "liqwatch"
    username: str = "default"
    password: SecretStr = SecretStr("")


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIQWATCH_", extra="ignore")

    # Apprise URLs carry tokens: secrets, space-separated in LIQWATCH_NOTIFY_URLS
    notify_urls: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    notify_urls_file: Path | None = None
    rules_file: Path | None = None
    apprise_config: Path | None = None

    @field_validator("notify_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [SecretStr(u) for u in value.split()]
        return value

    def all_urls(self) -> list[SecretStr]:
        """URLs from env plus those in ``notify_urls_file`` (one per line, # comments)."""
        urls = list(self.notify_urls)
        if self.notify_urls_file is not None:
            for raw in self.notify_urls_file.read_text().splitlines():
                url = raw.strip()
                if url and not url.startswith("#"):
                    urls.append(SecretStr(url))
        return urls


class ObservabilitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIQWATCH_", extra="ignore")

    metrics_port: int = Field(default=9108, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"  # noqa: S104 - inside a pod the probes come from the kubelet
    log_level: str = "INFO"
