"""Which instruments to stream per venue: every perpetual, or a list of names/globs.

A pattern matches an asset (``BTC``: that asset's perpetuals), a venue symbol (``BTCUSDT``,
``*USDT``) or a normalized instrument (``BTC-USD-INVERSE``, ``*-251226``: any contract, dated
ones included). ``*`` / ``all`` / nothing selects every perpetual, which lets venues use their
all-market streams.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

from liqwatch.schema import Venue
from producers.instruments import Instrument, InstrumentBook

SymbolSelection = Sequence[str] | Mapping[str, Sequence[str]] | None
EVERYTHING = {"*", "all", "ALL"}


def _patterns(venue: Venue, selection: SymbolSelection) -> list[str] | None:
    if selection is None:
        return None
    if isinstance(selection, Mapping):
        chosen = selection.get(venue.value)
        return None if chosen is None else [p for p in chosen if p]
    return [p for p in selection if p]


def _matches(inst: Instrument, pattern: str) -> bool:
    upper = pattern.upper()
    if inst.perpetual and fnmatchcase(inst.asset, upper):
        return True
    return fnmatchcase(inst.symbol.upper(), upper) or fnmatchcase(inst.instrument, upper)


def select_instruments(
    book: InstrumentBook, venue: Venue, selection: SymbolSelection
) -> tuple[list[Instrument], bool]:
    """(instruments, every perpetual selected?) for ``venue``."""
    patterns = _patterns(venue, selection)
    if not patterns or EVERYTHING & set(patterns):
        perps = sorted((i for i in book.all(venue) if i.perpetual), key=lambda i: i.symbol)
        return perps, True
    chosen = [i for i in book.all(venue) if any(_matches(i, p) for p in patterns)]
    return sorted(chosen, key=lambda i: i.symbol), False
