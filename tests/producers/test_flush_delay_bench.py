"""The flush-delay benchmark measures the batcher the producers ship, and counts every event."""

from __future__ import annotations

from liqwatch.bench.flush_delay import Source, _measure
from liqwatch.bench.worker_load import StressLoad, stress_envelopes
from producers.envelopes import MAX_DELAY_MS


def test_a_short_run_seals_every_event_once_at_the_shipped_delay() -> None:
    events = [e for env in stress_envelopes(StressLoad(events=2_000, assets=4)) for e in env.events]
    source = Source("short", events_per_s=4_000, burst=20, duration_s=0.25, parse_us=5)
    result = _measure(source, events)
    assert result.seal_ms == MAX_DELAY_MS < 50
    assert result.events == 1_000
    assert 1 <= result.envelopes <= result.events
    assert result.mean_envelope_events == result.events / result.envelopes
    assert 0 <= result.p99_ms <= result.max_ms
