"""Worker settings (env prefix LIQWATCH_WORKER_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

FETCH_MAX_WAIT_MS = 50


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIQWATCH_WORKER_", extra="ignore")

    app_id: str = "liqwatch-worker"
    state_dir: Path = Path("/tmp/liqwatch-worker")  # noqa: S108 - overridden in deployments
    # how often engine state is saved; envelopes are acked (and committed) only once saved
    snapshot_interval_s: float = Field(default=3.0, gt=0)
    # how often Faust commits acked offsets (a commit never passes the last saved snapshot)
    commit_interval_s: float = Field(default=2.8, gt=0)
    session_timeout_s: float = Field(default=30.0, gt=0)
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    # how often the worker looks for work that needs no new message (merge, snapshots)
    tick_interval_s: float = Field(default=0.1, gt=0)
    # bytes fetched per partition per request, Faust's 1 MiB doubled: fewer, larger fetches of
    # the busiest topic (the merge waits for it). Measured on the stress load, worker only:
    # 1 MiB 66-70k events/s, peak RSS 173-225 MB; 2 MiB 71-75k, 210-231 MB; 4 MiB 77k, 280 MB
    # with the merge's bound overrun (its order then depends on fetch timing)
    max_fetch_bytes: int = Field(default=2 * 1024 * 1024, ge=1024 * 1024)
    # events the merge may hold while it waits for a topic that is behind (~33 MB of JSON):
    # beyond that the topics that run ahead are paused; at 4x it stops waiting (counted: the
    # order then depends on fetch timing). Held as JSON since session 5, twice the events of
    # the earlier 50,000 decoded ones fit in the same memory.
    max_merge_events: int = Field(default=100_000, ge=1_000)
    # longest wait of the broker for a fetch that has nothing to return yet. aiokafka sends no
    # other fetch to that broker meanwhile, so with Faust's 1.5 s a fetch for quiet partitions
    # (the changelog, the assignor's leader topic) starved the busy ones: the worker stood
    # idle a fifth of the time on the stress load (measured: 58k -> 65-73k events/s)
    fetch_max_wait_ms: int = Field(default=FETCH_MAX_WAIT_MS, ge=1, le=1_500)
