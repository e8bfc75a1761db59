"""The documented venue frames in tests/fixtures/<venue>/ and the book they need."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from liqwatch.schema import Venue
from producers.instrument_rest import parse_binance, parse_okx
from producers.instruments import InstrumentBook

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def recordings() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("*/*.jsonl") if (FIXTURES / p.parent.name).is_dir())


def venue_of(path: Path) -> Venue:
    return Venue(path.parent.name)


def expected_for(path: Path) -> dict[str, Any]:
    expected = path.with_name(path.name.removesuffix(".jsonl") + ".expected.json")
    data: dict[str, Any] = json.loads(expected.read_text())
    return data


def fixture_book() -> InstrumentBook:
    """Built-in instruments plus the dated futures listed in the REST fixtures."""
    book = InstrumentBook.default()
    coinm = (FIXTURES / "binance_coinm" / "rest_exchangeInfo.json").read_bytes()
    book.update(parse_binance(Venue.BINANCE_COINM, coinm))
    book.update(parse_okx((FIXTURES / "okx" / "rest_instruments_futures.json").read_bytes()))
    return book


def recording_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
