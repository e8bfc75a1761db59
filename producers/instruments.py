"""Instrument metadata: what a venue symbol is, and how its quantities turn into base and USD.

Every venue reports sizes in its own unit (base coins, USD contracts, contracts of ``ctVal``).
An ``Instrument`` carries the one conversion rule all parsers use: ``contracts × contract_size``
is either base units (``ContractUnit.BASE``) or USD (``ContractUnit.USD``, inverse contracts).
USDT/USDC-quoted notionals are taken as USD (stablecoin ≈ 1 USD), as every liquidation tool does.

``InstrumentBook.default()`` holds built-in metadata for the common perpetuals; the venues'
public REST (``producers.instrument_rest``) refreshes it, with an on-disk cache
(``producers.instrument_refresh``).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping

import msgspec

from liqwatch.schema import ContractKind, Venue


class ContractUnit(enum.StrEnum):
    BASE = "base"  # one contract is contract_size coins of the asset
    USD = "usd"  # one contract is contract_size USD (inverse contracts)


USD_CONTRACTS = ContractUnit.USD


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    venue: Venue
    symbol: str  # the venue's own symbol / instId / instrument_name
    instrument: str  # normalized: BTC-USDT-PERP, BTC-USD-INVERSE, BTC-USD-251226
    asset: str  # BTC (XBT is spelled BTC)
    quote: str  # USDT, USDC, USD
    kind: ContractKind
    contract_size: float
    contract_unit: ContractUnit
    expiry: int | None = None  # ms; None for perpetuals

    @property
    def perpetual(self) -> bool:
        return self.expiry is None

    def value(self, contracts: float, price: float) -> tuple[float, float]:
        """(base units, USD) of ``contracts`` at ``price``."""
        size = contracts * self.contract_size
        if self.contract_unit is ContractUnit.USD:
            return size / price, size
        return size, size * price


class UnknownInstrument(LookupError):  # noqa: N818 - the name the parsers and docs use
    def __init__(self, venue: Venue | str, symbol: str) -> None:
        super().__init__(f"unknown instrument {symbol!r} on {venue}")
        self.venue = venue
        self.symbol = symbol


ASSET_ALIASES = {"XBT": "BTC"}


def normalize_asset(code: str) -> str:
    code = code.upper()
    return ASSET_ALIASES.get(code, code)


def yymmdd(expiry_ms: int) -> str:
    day = dt.datetime.fromtimestamp(expiry_ms / 1000, tz=dt.UTC)
    return day.strftime("%y%m%d")


def instrument_name(asset: str, quote: str, kind: ContractKind, expiry: int | None) -> str:
    """``ASSET-QUOTE-PERP``, ``ASSET-USD-INVERSE`` (inverse perp), ``ASSET-QUOTE-YYMMDD``."""
    if expiry is not None:
        return f"{asset}-{quote}-{yymmdd(expiry)}"
    if kind is ContractKind.INVERSE:
        return f"{asset}-USD-INVERSE"
    return f"{asset}-{quote}-PERP"


def make_instrument(
    venue: Venue,
    symbol: str,
    asset: str,
    quote: str,
    kind: ContractKind,
    *,
    contract_size: float = 1.0,
    contract_unit: ContractUnit | None = None,
    expiry: int | None = None,
) -> Instrument:
    asset = normalize_asset(asset)
    quote = quote.upper()
    if contract_unit is None:
        contract_unit = ContractUnit.USD if kind is ContractKind.INVERSE else ContractUnit.BASE
    return Instrument(
        venue=venue,
        symbol=symbol,
        instrument=instrument_name(asset, quote, kind, expiry),
        asset=asset,
        quote=quote,
        kind=kind,
        contract_size=float(contract_size),
        contract_unit=contract_unit,
        expiry=expiry,
    )


class InstrumentBook:
    """Instruments by venue and venue symbol; updated in place so parsers see refreshes."""

    def __init__(self, instruments: Iterable[Instrument] = ()) -> None:
        # public for the parsers' hot path (one attribute and two dict lookups); read-only
        self.by_venue: dict[Venue, dict[str, Instrument]] = {venue: {} for venue in Venue}
        self.update(instruments)

    @classmethod
    def default(cls) -> InstrumentBook:
        from producers.instrument_defaults import DEFAULT_INSTRUMENTS  # noqa: PLC0415

        return cls(DEFAULT_INSTRUMENTS)

    def lookup(self, venue: Venue, symbol: str) -> Instrument:
        found = self.by_venue.get(venue, {}).get(symbol)
        if found is None:
            raise UnknownInstrument(venue, symbol)
        return found

    def symbols(self, venue: Venue) -> Mapping[str, Instrument]:
        """The live mapping for one venue (parsers keep it; refreshes show through)."""
        return self.by_venue[venue]

    def update(self, instruments: Iterable[Instrument]) -> int:
        count = 0
        for inst in instruments:
            self.by_venue[inst.venue][inst.symbol] = inst
            count += 1
        return count

    def all(self, venue: Venue | None = None) -> list[Instrument]:
        venues = [venue] if venue is not None else list(Venue)
        return [inst for v in venues for inst in self.by_venue[v].values()]

    def __len__(self) -> int:
        return sum(len(symbols) for symbols in self.by_venue.values())
