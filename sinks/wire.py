"""Decoding types for the hot path: the schema's market events, untracked by the collector.

A Kafka envelope carries hundreds of events; as plain schema structs each one is tracked by
Python's cyclic garbage collector, whose sweeps over hundreds of thousands of live events
cost about as much as decoding them. These subclasses only add ``gc=False`` (an event holds
strings and numbers, so it can never be part of a reference cycle): same fields, same JSON
tag, ``isinstance`` of the schema type, and encoded back to the very same JSON.
"""

from __future__ import annotations

import msgspec

from liqwatch.schema import EventKind, Liquidation, MarkPrice, OpenInterest


class FastLiquidation(Liquidation, frozen=True, kw_only=True, gc=False):
    pass


class FastOpenInterest(OpenInterest, frozen=True, kw_only=True, gc=False):
    pass


class FastMarkPrice(MarkPrice, frozen=True, kw_only=True, gc=False):
    pass


class FastEnvelope(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """``liqwatch.schema.Envelope`` with untracked events (tests keep the fields in step)."""

    kind: EventKind
    asset: str
    producer: str
    seq: int
    ts_flush: int
    events: list[FastLiquidation | FastOpenInterest | FastMarkPrice]


envelope_decoder = msgspec.json.Decoder(FastEnvelope)
