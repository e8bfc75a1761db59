"""Helpers every venue parser uses: typed numbers, decoding, instrument lookup, times.

Numbers are decoded by msgspec in lax mode (venues send most numbers as strings), with
constraints that reject NaN, infinities, negative sizes and seconds-for-milliseconds mistakes
in C, before any Python code sees the frame. Liquidation sizes and prices that go into an
``event_id`` are kept as the venue's text (``NumberText``) and checked by ``positive``.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, TypeVar

import msgspec

from liqwatch.schema import Venue
from producers.base import IgnoredFrame, ParseContext
from producers.errors import BadJsonError, SchemaError, UnknownInstrumentError
from producers.instruments import Instrument

T = TypeVar("T")

MAX_PHYSICAL = 1e18  # above any real price or size; inf fails it
# finite and physical: a price or size is > 0 and below anything real (NaN/inf fail the bounds)
Positive = Annotated[float, msgspec.Meta(gt=0.0, le=MAX_PHYSICAL)]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_PHYSICAL)]
Rate = Annotated[float, msgspec.Meta(ge=-1e3, le=1e3)]
# ms since the epoch between 2001 and 2286: a seconds or microseconds value fails
TS_MS_MIN, TS_MS_END = 1_000_000_000_000, 10_000_000_000_000  # 2001-09-09 to 2286-11-20
TsMs = Annotated[int, msgspec.Meta(ge=TS_MS_MIN, lt=TS_MS_END)]

NumberText = str | float  # a number as the venue sent it (kept as text for the event id)

CONTROL_CHANNEL = "control"  # frames that carry no channel: acks, pongs, heartbeats
PONG = b"pong"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# msgspec's C number parser reads a number's text ~4x faster than float() (which costs ~0.1 µs
# a call on CPython 3.11). It accepts only JSON number text, a subset of what float() accepts,
# and rounds correctly, so on that subset both give the same float; callers fall back to float()
# for the rest (a JSON number sent as a number, "5.", "inf", ...) and for any value <= 0
# (``-0`` parses as 0.0, not -0.0), so results and error messages stay those of float().
# Raises msgspec.DecodeError (not JSON number text) or TypeError (not text).
number_text = msgspec.json.Decoder(float).decode


def decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    return msgspec.json.Decoder(type_, strict=False)


def decode(dec: msgspec.json.Decoder[T], frame: bytes) -> T:
    try:
        return dec.decode(frame)
    except msgspec.ValidationError as exc:
        raise SchemaError(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise BadJsonError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise BadJsonError(f"not UTF-8: {exc}") from None


def lookup(ctx: ParseContext, venue: Venue, symbol: str) -> Instrument:
    inst: Instrument | None = ctx.instruments.by_venue[venue].get(symbol)
    if inst is None:
        raise UnknownInstrumentError(f"unknown instrument {symbol!r} on {venue}")
    return inst


def ignore_pong(frame: bytes) -> None:
    if frame == PONG:
        raise IgnoredFrame("pong")


def positive(name: str, value: NumberText) -> float:
    """A finite number > 0 from a venue's number text (NaN, inf, 0, negatives rejected)."""
    try:
        number = number_text(value)  # type: ignore[arg-type]  # a float raises TypeError
        if 0.0 < number <= MAX_PHYSICAL:
            return number
    except (msgspec.DecodeError, TypeError):
        pass
    return _positive_slow(name, value)


def _positive_slow(name: str, value: NumberText) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SchemaError(f"{name} is not a number: {value!r}") from None
    if not 0.0 < number <= MAX_PHYSICAL:  # also false for NaN
        raise SchemaError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def opt_float(text: str) -> float | None:
    """Venues send "" for an absent number (Binance COIN-M delivery funding)."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise SchemaError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise SchemaError(f"not a finite number: {text!r}")
    return value


def iso_ms(text: str) -> int:
    """ms since the epoch of an ISO-8601 time (BitMEX ``2025-10-10T21:05:12.000Z``)."""
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SchemaError(f"not an ISO time: {text!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    ms = (stamp - EPOCH) // dt.timedelta(milliseconds=1)
    if not TS_MS_MIN <= ms < TS_MS_END:  # the bounds TsMs puts on numeric venue times
        raise SchemaError(f"time out of range: {text!r}")
    return ms
