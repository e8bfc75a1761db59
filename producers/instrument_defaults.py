"""Built-in metadata for the common perpetuals on every venue (BTC, ETH, SOL, XRP, DOGE).

Enough for the synthetic market, the tests and a first start without network; the venues'
REST metadata replaces it when reachable. Contract sizes as the venues publish them (OKX
``ctVal``, Binance COIN-M ``contractSize``, BitMEX ``1 / underlyingToPositionMultiplier``).
"""

from __future__ import annotations

from liqwatch.schema import ContractKind, Venue
from producers.instruments import ContractUnit, Instrument, make_instrument

LINEAR = ContractKind.LINEAR
INVERSE = ContractKind.INVERSE
ASSETS = ("BTC", "ETH", "SOL", "XRP", "DOGE")

# OKX ctVal: linear in base coins per contract, inverse in USD per contract
OKX_LINEAR_CTVAL = {"BTC": 0.01, "ETH": 0.1, "SOL": 1.0, "XRP": 100.0, "DOGE": 1000.0}
OKX_INVERSE_CTVAL = {"BTC": 100.0, "ETH": 10.0, "SOL": 10.0, "XRP": 10.0, "DOGE": 10.0}
# BitMEX linear USDT perps: base coins per contract (1 / underlyingToPositionMultiplier)
BITMEX_LINEAR_SIZE = {"BTC": 1e-6, "ETH": 1e-5, "SOL": 1e-4, "XRP": 0.01, "DOGE": 0.1}
BITMEX_ROOT = {"BTC": "XBT"}


def _binance() -> list[Instrument]:
    usdm = [make_instrument(Venue.BINANCE, f"{a}USDT", a, "USDT", LINEAR) for a in ASSETS]
    coinm = [
        make_instrument(
            Venue.BINANCE_COINM,
            f"{a}USD_PERP",
            a,
            "USD",
            INVERSE,
            contract_size=100.0 if a == "BTC" else 10.0,
        )
        for a in ASSETS
    ]
    return usdm + coinm


def _bybit() -> list[Instrument]:
    linear = [make_instrument(Venue.BYBIT, f"{a}USDT", a, "USDT", LINEAR) for a in ASSETS]
    inverse = [
        make_instrument(Venue.BYBIT, f"{a}USD", a, "USD", INVERSE)
        for a in ("BTC", "ETH", "SOL", "XRP")
    ]
    return linear + inverse


def _okx() -> list[Instrument]:
    linear = [
        make_instrument(
            Venue.OKX, f"{a}-USDT-SWAP", a, "USDT", LINEAR, contract_size=OKX_LINEAR_CTVAL[a]
        )
        for a in ASSETS
    ]
    inverse = [
        make_instrument(
            Venue.OKX, f"{a}-USD-SWAP", a, "USD", INVERSE, contract_size=OKX_INVERSE_CTVAL[a]
        )
        for a in ASSETS
    ]
    return linear + inverse


def _deribit() -> list[Instrument]:
    # Deribit amounts are already USD for inverse contracts and base coins for linear ones
    inverse = [
        make_instrument(Venue.DERIBIT, f"{a}-PERPETUAL", a, "USD", INVERSE) for a in ("BTC", "ETH")
    ]
    linear = [
        make_instrument(Venue.DERIBIT, f"{a}_USDC-PERPETUAL", a, "USDC", LINEAR) for a in ASSETS
    ]
    return inverse + linear


def _bitmex() -> list[Instrument]:
    inverse = [make_instrument(Venue.BITMEX, "XBTUSD", "XBT", "USD", INVERSE)]
    linear = [
        make_instrument(
            Venue.BITMEX,
            f"{BITMEX_ROOT.get(a, a)}USDT",
            a,
            "USDT",
            LINEAR,
            contract_size=BITMEX_LINEAR_SIZE[a],
            contract_unit=ContractUnit.BASE,
        )
        for a in ASSETS
    ]
    return inverse + linear


DEFAULT_INSTRUMENTS: tuple[Instrument, ...] = (
    *_binance(),
    *_bybit(),
    *_okx(),
    *_deribit(),
    *_bitmex(),
)
