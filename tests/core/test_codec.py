"""Round-trip property tests for every record that crosses a process boundary."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqwatch import codec
from liqwatch.schema import (
    Alert,
    AlertUpdate,
    CascadeSignal,
    ClusterSnapshot,
    DeadLetter,
    Delivery,
    Envelope,
    EventKind,
    GroundTruth,
    HeatmapSnapshot,
    Label,
    Liquidation,
    MarkPrice,
    OpenInterest,
    RecordedFrame,
    SweepSignal,
)

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
ms = st.integers(min_value=0, max_value=2**53)


def _build(cls: type[Any]) -> st.SearchStrategy[Any]:
    """from_type, except that fields with a default factory get explicit values (hypothesis
    would otherwise pass msgspec's factory sentinel through)."""
    explicit = {
        f.name: st.from_type(f.type)
        for f in msgspec.structs.fields(cls)
        if f.default_factory is not msgspec.NODEFAULT
    }
    return st.builds(cls, **explicit) if explicit else st.from_type(cls)


# floats must be finite: JSON has no NaN; the parsers reject non-finite numbers before this point
st.register_type_strategy(float, finite)

st.register_type_strategy(Label, _build(Label))

EVENTS = st.one_of(_build(Liquidation), _build(OpenInterest), _build(MarkPrice))


@settings(max_examples=200)
@given(EVENTS)
def test_market_event_round_trip(event: Any) -> None:
    assert codec.event_decoder.decode(codec.encode(event)) == event


@settings(max_examples=200)
@given(st.lists(EVENTS, max_size=5), st.sampled_from(list(EventKind)), ms)
def test_envelope_round_trip(events: list[Any], kind: EventKind, ts: int) -> None:
    env = Envelope(kind=kind, asset="BTC", producer="p", seq=1, ts_flush=ts, events=events)
    assert codec.envelope_decoder.decode(codec.encode(env)) == env


@settings(max_examples=200)
@given(st.lists(EVENTS, max_size=5), ms, st.booleans())
def test_envelope_headers_round_trip_to_the_bodys_head(
    events: list[Any], ts: int, as_mapping: bool
) -> None:
    env = Envelope(
        kind=EventKind.LIQUIDATION, asset="BTC", producer="p", seq=1, ts_flush=ts, events=events
    )
    pairs = codec.envelope_headers(env)
    head = codec.envelope_head_decoder.decode(codec.encode(env))
    headers: codec.Headers = dict(pairs) if as_mapping else [("trace", b"x"), *pairs]
    assert codec.head_from_headers(headers) == (head.ts_flush, len(head.events))


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [(codec.SEAL_HEADER, b"12")],  # no count
        [(codec.SEAL_HEADER, b"12"), (codec.EVENTS_HEADER, b"many")],
        [(codec.SEAL_HEADER, None), (codec.EVENTS_HEADER, b"3")],
        [(codec.SEAL_HEADER, b"12"), (codec.EVENTS_HEADER, b"-1")],
    ],
)
def test_missing_or_unreadable_headers_say_decode_the_body(headers: Any) -> None:
    assert codec.head_from_headers(headers) is None


@pytest.mark.parametrize(
    ("cls", "decoder"),
    [
        (ClusterSnapshot, codec.signal_decoder),
        (HeatmapSnapshot, codec.signal_decoder),
        (SweepSignal, codec.signal_decoder),
        (CascadeSignal, codec.signal_decoder),
        (Alert, codec.alert_decoder),
        (AlertUpdate, codec.alert_decoder),
        (Delivery, codec.delivery_decoder),
        (DeadLetter, codec.dead_letter_decoder),
        (GroundTruth, codec.ground_truth_decoder),
    ],
)
def test_record_round_trip(cls: type[Any], decoder: msgspec.json.Decoder[Any]) -> None:
    @settings(max_examples=50)
    @given(_build(cls))
    def check(record: Any) -> None:
        assert decoder.decode(codec.encode(record)) == record

    check()


def test_recorded_frame_keeps_raw_frame() -> None:
    line = b'{"venue":"bybit","channel":"allLiquidation.BTCUSDT","ts_recv":5,"frame":{"a":[1,"x"]}}'
    rec = codec.recorded_frame_decoder.decode(line)
    assert isinstance(rec, RecordedFrame)
    assert rec.frame == {"a": [1, "x"]}
    assert codec.recorded_frame_decoder.decode(codec.encode(rec)) == rec


def test_decoder_rejects_wrong_side() -> None:
    bad = (
        b'{"type":"liquidation","venue":"binance","symbol":"BTCUSDT","instrument":"BTC-USDT-PERP",'
        b'"asset":"BTC","side":"buy","price":1,"qty":1,"notional_usd":1,'
        b'"completeness":"sampled","ts_event":1,"ts_recv":1,"event_id":"x"}'
    )
    with pytest.raises(codec.ValidationError, match="side"):
        codec.event_decoder.decode(bad)
