"""Fast JSON encode/decode for every record that crosses a process boundary."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from liqwatch.schema import (
    AlertMessage,
    DeadLetter,
    Delivery,
    Envelope,
    EnvelopeHead,
    GroundTruth,
    MarketEvent,
    RecordedFrame,
    Signal,
)

T = TypeVar("T")

_encoder = msgspec.json.Encoder()

envelope_decoder = msgspec.json.Decoder(Envelope)
envelope_head_decoder = msgspec.json.Decoder(EnvelopeHead)
event_decoder = msgspec.json.Decoder(MarketEvent)
signal_decoder = msgspec.json.Decoder(Signal)
alert_decoder = msgspec.json.Decoder(AlertMessage)
delivery_decoder = msgspec.json.Decoder(Delivery)
dead_letter_decoder = msgspec.json.Decoder(DeadLetter)
recorded_frame_decoder = msgspec.json.Decoder(RecordedFrame)
ground_truth_decoder = msgspec.json.Decoder(GroundTruth)

DecodeError = msgspec.DecodeError
ValidationError = msgspec.ValidationError


def encode(obj: Any) -> bytes:
    return _encoder.encode(obj)


def encode_line(obj: Any) -> bytes:
    """One JSON object and a newline, for JSON-lines files."""
    buf = bytearray()
    _encoder.encode_into(obj, buf)
    buf += b"\n"
    return bytes(buf)


def to_builtins(obj: Any) -> Any:
    """Plain dicts/lists/str for ClickHouse rows and templates (enums become their values)."""
    return msgspec.to_builtins(obj)


def decode_as(data: bytes | str, type_: type[T]) -> T:
    return msgspec.json.decode(data, type=type_)
