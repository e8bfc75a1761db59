"""The flush-delay benchmark measures the batcher the producers ship, and counts every event."""

from __future__ import annotations

import inspect

from liqwatch.bench.flush_delay import Source, _measure
from liqwatch.bench.worker_load import StressLoad, stress_envelopes
from producers.envelopes import EnvelopeBatcher
from producers.publish import FramePublisher


def test_the_bench_batcher_has_the_producers_settings() -> None:
    shipped = inspect.signature(FramePublisher).parameters
    batcher = EnvelopeBatcher("bench")
    assert batcher.max_delay_ms == shipped["max_delay_ms"].default < 50
    assert batcher.max_events == shipped["max_events"].default


def test_a_short_run_seals_every_event_once() -> None:
    events = [e for env in stress_envelopes(StressLoad(events=2_000, assets=4)) for e in env.events]
    source = Source("short", events_per_s=4_000, burst=20, duration_s=0.25, parse_us=5)
    result = _measure(source, events)
    assert result.events == 1_000
    assert 1 <= result.envelopes <= result.events
    assert result.mean_envelope_events == result.events / result.envelopes
    assert 0 <= result.p99_ms <= result.max_ms
