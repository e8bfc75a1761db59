"""Worker settings (env prefix LIQWATCH_WORKER_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIQWATCH_WORKER_", extra="ignore")

    app_id: str = "liqwatch-worker"
    state_dir: Path = Path("/tmp/liqwatch-worker")  # noqa: S108 - overridden in deployments
    snapshot_interval_s: float = Field(default=3.0, gt=0)
    session_timeout_s: float = Field(default=30.0, gt=0)
    metrics_port: int = Field(default=9108, ge=0, le=65535)
