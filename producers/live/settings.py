"""Settings of the live producer (``LIQWATCH_PRODUCER_*``); defaults come from each venue's
protocol, and every timing can be overridden (tests shrink them to fractions of a second)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from liqwatch.schema import Venue
from liqwatch.settings import default_data_dir
from producers.live.connection import ConnectionPolicy
from producers.live.protocol import VenueProtocol


def _default_cache() -> Path:
    return default_data_dir() / "instruments.json"


class LiveSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIQWATCH_PRODUCER_", extra="ignore")

    # venue -> base URL, e.g. {"bybit": "wss://stream-testnet.bybit.com"} (JSON in the env)
    ws_urls: dict[str, str] = Field(default_factory=dict)
    rest_urls: dict[str, str] = Field(default_factory=dict)
    heartbeat_interval_s: float | None = Field(default=None, gt=0)
    pong_timeout_s: float = Field(default=10.0, gt=0)
    stale_after_s: float | None = Field(default=None, gt=0)
    lifetime_s: float | None = Field(default=None, gt=0)
    lifetime_margin_s: float = Field(default=600.0, ge=0)
    handover_grace_s: float = Field(default=2.0, ge=0)
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_cap_s: float = Field(default=60.0, gt=0)
    stable_after_s: float = Field(default=30.0, ge=0)
    open_timeout_s: float = Field(default=10.0, gt=0)
    tick_s: float = Field(default=1.0, gt=0)
    oi_poll_interval_s: float = Field(default=30.0, ge=0)  # 0 disables REST open interest
    rest_requests_per_minute: int = Field(default=600, ge=1)  # Binance allows 2400 weight/min
    rest_timeout_s: float = Field(default=10.0, gt=0)
    instruments_cache: Path | None = Field(default_factory=_default_cache)
    refresh_instruments: bool = True  # load venue metadata by REST at start and periodically
    instruments_refresh_s: float = Field(default=6 * 3600.0, gt=0)

    @field_validator("ws_urls", "rest_urls")
    @classmethod
    def _known_venues(cls, urls: dict[str, str]) -> dict[str, str]:
        unknown = set(urls) - {v.value for v in Venue}
        if unknown:
            raise ValueError(f"unknown venues {sorted(unknown)}")
        return urls

    def ws_url(self, protocol: VenueProtocol) -> str:
        return self.ws_urls.get(protocol.venue.value, protocol.ws_url).rstrip("/")

    def rest_url(self, protocol: VenueProtocol) -> str | None:
        return self.rest_urls.get(protocol.venue.value, protocol.rest_url or "") or None

    def heartbeat_s(self, protocol: VenueProtocol) -> float:
        return self.heartbeat_interval_s or protocol.heartbeat_interval_s

    def policy(self, protocol: VenueProtocol) -> ConnectionPolicy:
        return ConnectionPolicy(
            heartbeat_interval_s=self.heartbeat_s(protocol),
            stale_after_s=self.stale_after_s or protocol.stale_after_s,
            lifetime_s=self.lifetime_s or protocol.lifetime_s,
            pong_timeout_s=self.pong_timeout_s,
            backoff_base_s=self.backoff_base_s,
            backoff_cap_s=self.backoff_cap_s,
            stable_after_s=self.stable_after_s,
            open_timeout_s=self.open_timeout_s,
            tick_s=self.tick_s,
            lifetime_margin_s=self.lifetime_margin_s,
            handover_grace_s=self.handover_grace_s,
        )
