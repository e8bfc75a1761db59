"""The parse boundary never raises, counts what it did, and dedupes replays when asked."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from liqwatch.schema import Venue
from producers import parsing
from producers.base import ParseContext
from producers.metrics import ProducerMetrics
from producers.parsing import FrameParser, ParseStats, channel_family, new_context, parse_frame

FRAME = (
    b'{"topic":"allLiquidation.BTCUSDT","type":"snapshot","ts":1760130312500,"data":[{"T":'
    b'1760130312231,"s":"BTCUSDT","S":"Buy","v":"1.250","p":"112290.40"}]}'
)


def test_unknown_venue_and_channel_are_dead_letters() -> None:
    ctx = new_context()
    venue = parse_frame("kraken", "trades", FRAME, 1, ctx)
    assert venue.dead_letter is not None and venue.dead_letter.reason == "unknown_venue: 'kraken'"
    channel = parse_frame(Venue.BYBIT, "orderbook.50.BTCUSDT", FRAME, 1, ctx)
    assert channel.dead_letter is not None
    assert channel.dead_letter.reason.startswith("unknown_channel")
    assert channel.dead_letter.raw == FRAME.decode() and channel.dead_letter.venue == "bybit"


def test_a_parser_bug_costs_one_frame_not_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(channel: str, frame: bytes, ts_recv: int, ctx: ParseContext) -> list[object]:
        return [1 / 0]

    monkeypatch.setitem(parsing._PARSE, "bybit", broken)
    result = parse_frame(Venue.BYBIT, "allLiquidation.BTCUSDT", FRAME, 1, new_context())
    assert result.dead_letter is not None
    assert result.dead_letter.reason.startswith("internal: ZeroDivisionError")


def test_huge_frames_are_kept_truncated_with_a_note() -> None:
    frame = b'{"x":"' + b"a" * 300_000 + b'"}'
    result = parse_frame(Venue.BYBIT, "allLiquidation.BTCUSDT", frame, 1, new_context())
    assert result.dead_letter is not None
    assert len(result.dead_letter.raw) == parsing.MAX_RAW_CHARS
    assert "truncated from 300008 chars" in result.dead_letter.reason


def test_channel_families_bound_the_label_values() -> None:
    assert channel_family("!forceOrder@arr") == "forceOrder"
    assert channel_family("btcusdt@forceOrder") == "forceOrder"
    assert channel_family("!markPrice@arr@1s") == "markPrice"
    assert channel_family("btcusdt@markPrice@1s") == "markPrice"
    assert channel_family("allLiquidation.BTCUSDT") == "allLiquidation"
    assert channel_family("trades.BTC-PERPETUAL.raw") == "trades"
    assert channel_family("/fapi/v1/openInterest") == "/fapi/v1/openInterest"
    assert channel_family("liquidation-orders") == "liquidation-orders"


def test_stats_flush_to_prometheus_and_dedupe_drops_replayed_events() -> None:
    registry = CollectorRegistry()
    metrics = ProducerMetrics(registry)
    stats = ParseStats()
    parser = FrameParser(stats=stats, dedupe_capacity=1000)
    first = parser.parse(Venue.BYBIT, "allLiquidation.BTCUSDT", FRAME, 1)
    again = parser.parse(Venue.BYBIT, "allLiquidation.BTCUSDT", FRAME, 2)
    parser.parse(Venue.BYBIT, "allLiquidation.BTCUSDT", b"{", 3)
    parser.parse(Venue.BYBIT, "control", b'{"op":"ping","success":true,"ret_msg":"pong"}', 4)
    parser.parse(Venue.BYBIT, "no-such-channel", FRAME, 5)
    assert len(first.events) == 1 and again.events == []
    assert parser.recent is not None and parser.recent.duplicates == 1
    stats.flush(metrics)
    frames = {"venue": "bybit", "channel": "allLiquidation"}
    assert registry.get_sample_value("liqwatch_producer_frames_total", frames) == 3
    kind = {"venue": "bybit", "kind": "liquidation"}
    assert registry.get_sample_value("liqwatch_producer_events_total", kind) == 1
    duplicates = {"venue": "bybit"}
    assert registry.get_sample_value("liqwatch_producer_duplicate_events_total", duplicates) == 1
    dlq = {"source": "producer/parse"}
    assert registry.get_sample_value("liqwatch_dlq_messages_total", dlq) == 2
    ignored = {"venue": "bybit", "channel": "control"}
    assert registry.get_sample_value("liqwatch_producer_ignored_frames_total", ignored) == 1
    for reason in ("bad_json", "unknown_channel"):
        labels = {"venue": "bybit", "reason": reason}
        assert registry.get_sample_value("liqwatch_producer_parse_errors_total", labels) == 1
    assert stats.frames == {}  # flushed
    stats.flush(metrics)  # nothing counted twice
    assert registry.get_sample_value("liqwatch_producer_frames_total", frames) == 3
