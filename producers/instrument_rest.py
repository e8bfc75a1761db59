"""Instrument metadata from each venue's public REST, in the documented response shapes.

One pure function per venue turns a response body into ``Instrument``s (skipping what we cannot
value: BitMEX quanto contracts, spot and index symbols); ``fetch_venue`` fetches every page.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import msgspec

from liqwatch.schema import ContractKind, Venue
from producers.instruments import ContractUnit, Instrument, make_instrument
from producers.venues._common import iso_ms

Fetch = Callable[[str, float], bytes]

DEFAULT_REST_URLS: dict[Venue, str] = {
    Venue.BINANCE: "https://fapi.binance.com",
    Venue.BINANCE_COINM: "https://dapi.binance.com",
    Venue.BYBIT: "https://api.bybit.com",
    Venue.OKX: "https://www.okx.com",
    Venue.DERIBIT: "https://www.deribit.com",
    Venue.BITMEX: "https://www.bitmex.com",
}
LINEAR, INVERSE = ContractKind.LINEAR, ContractKind.INVERSE
PERPETUAL_EXPIRY_MS = 4_000_000_000_000  # venues put "never" (2096/2100) as a far expiry


class InstrumentFetchError(Exception):
    pass


def fetch_bytes(url: str, timeout_s: float) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise InstrumentFetchError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url, headers={"User-Agent": "liqwatch"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        body: bytes = response.read()
    return body


def _expiry(ms: int | None) -> int | None:
    return ms if ms and ms < PERPETUAL_EXPIRY_MS else None


# --- Binance ------------------------------------------------------------------------------


class _BinanceSymbol(msgspec.Struct, rename="camel"):
    symbol: str
    contract_type: str = ""
    base_asset: str = ""
    quote_asset: str = ""
    delivery_date: int = 0
    contract_size: float = 1.0


class _BinanceInfo(msgspec.Struct):
    symbols: list[_BinanceSymbol]


def parse_binance(venue: Venue, body: bytes) -> list[Instrument]:
    """``/fapi/v1/exchangeInfo`` (base units) or ``/dapi/v1/exchangeInfo`` (USD contracts)."""
    inverse = venue is Venue.BINANCE_COINM
    out = []
    for row in msgspec.json.decode(body, type=_BinanceInfo, strict=False).symbols:
        if not row.contract_type or not row.base_asset:
            continue
        perpetual = row.contract_type.endswith("PERPETUAL")
        expiry = None if perpetual else _expiry(row.delivery_date)
        kind, size = (INVERSE, row.contract_size) if inverse else (LINEAR, 1.0)
        out.append(
            make_instrument(
                venue,
                row.symbol,
                row.base_asset,
                row.quote_asset,
                kind,
                contract_size=size,
                expiry=expiry,
            )
        )
    return out


# --- Bybit --------------------------------------------------------------------------------


class _BybitRow(msgspec.Struct, rename="camel"):
    symbol: str
    contract_type: str
    base_coin: str
    quote_coin: str
    delivery_time: int = 0


class _BybitResult(msgspec.Struct, rename="camel"):
    rows: list[_BybitRow] = msgspec.field(name="list")
    next_page_cursor: str = ""


class _BybitResponse(msgspec.Struct, rename="camel"):
    ret_code: int
    ret_msg: str = ""
    result: _BybitResult | None = None


def parse_bybit(body: bytes) -> tuple[list[Instrument], str]:
    """``/v5/market/instruments-info`` page: (instruments, next page cursor or "")."""
    response = msgspec.json.decode(body, type=_BybitResponse, strict=False)
    if response.ret_code != 0 or response.result is None:
        raise InstrumentFetchError(f"bybit retCode {response.ret_code}: {response.ret_msg}")
    out = []
    for row in response.result.rows:
        kind = INVERSE if row.contract_type.startswith("Inverse") else LINEAR
        perpetual = row.contract_type.endswith("Perpetual")
        expiry = None if perpetual else _expiry(row.delivery_time)
        out.append(
            make_instrument(
                Venue.BYBIT, row.symbol, row.base_coin, row.quote_coin, kind, expiry=expiry
            )
        )
    return out, response.result.next_page_cursor


# --- OKX ----------------------------------------------------------------------------------


class _OkxRow(msgspec.Struct, rename="camel"):
    inst_id: str
    inst_type: str
    ct_val: float
    ct_val_ccy: str
    ct_type: str
    inst_family: str = ""
    uly: str = ""
    exp_time: str = ""


class _OkxResponse(msgspec.Struct):
    code: str
    data: list[_OkxRow]
    msg: str = ""


def _okx_instrument(row: _OkxRow) -> Instrument | None:
    family = row.inst_family or row.uly
    if "-" not in family:
        return None
    asset, quote = family.split("-", 1)
    inverse = row.ct_type == "inverse"
    unit = ContractUnit.USD if inverse else ContractUnit.BASE
    if row.ct_val_ccy.upper() != ("USD" if inverse else asset.upper()):
        return None  # a contract valued in something else: we cannot convert it
    expiry = _expiry(int(row.exp_time)) if row.exp_time and row.inst_type == "FUTURES" else None
    kind = INVERSE if inverse else LINEAR
    return make_instrument(
        Venue.OKX,
        row.inst_id,
        asset,
        quote,
        kind,
        contract_size=row.ct_val,
        contract_unit=unit,
        expiry=expiry,
    )


def parse_okx(body: bytes) -> list[Instrument]:
    """``/api/v5/public/instruments?instType=SWAP|FUTURES``: ``sz`` × ``ctVal``."""
    response = msgspec.json.decode(body, type=_OkxResponse, strict=False)
    if response.code != "0":
        raise InstrumentFetchError(f"okx code {response.code}: {response.msg}")
    found = (_okx_instrument(row) for row in response.data)
    return [inst for inst in found if inst is not None]


# --- Deribit ------------------------------------------------------------------------------


class _DeribitRow(msgspec.Struct):
    instrument_name: str
    kind: str
    base_currency: str
    quote_currency: str
    instrument_type: str = "reversed"
    settlement_period: str = ""
    expiration_timestamp: int = 0
    counter_currency: str = ""


class _DeribitResponse(msgspec.Struct):
    result: list[_DeribitRow]


def parse_deribit(body: bytes) -> list[Instrument]:
    """``public/get_instruments``: amounts are USD (inverse, "reversed") or base (linear)."""
    out = []
    for row in msgspec.json.decode(body, type=_DeribitResponse, strict=False).result:
        if row.kind != "future":
            continue
        kind = INVERSE if row.instrument_type == "reversed" else LINEAR
        quote = row.counter_currency or row.quote_currency
        perpetual = row.settlement_period == "perpetual"
        expiry = None if perpetual else _expiry(row.expiration_timestamp)
        out.append(
            make_instrument(
                Venue.DERIBIT,
                row.instrument_name,
                row.base_currency,
                quote,
                kind,
                expiry=expiry,
            )
        )
    return out


# --- BitMEX -------------------------------------------------------------------------------


class _BitmexRow(msgspec.Struct, rename="camel"):
    symbol: str
    typ: str
    underlying: str = ""
    quote_currency: str = ""
    is_quanto: bool = False
    is_inverse: bool = False
    multiplier: float | None = None
    underlying_to_position_multiplier: float | None = None
    underlying_to_settle_multiplier: float | None = None
    expiry: str | None = None


def _bitmex_size(row: _BitmexRow) -> float | None:
    if row.is_inverse:
        if not row.multiplier or not row.underlying_to_settle_multiplier:
            return None
        return row.multiplier / row.underlying_to_settle_multiplier  # USD per contract
    if not row.underlying_to_position_multiplier:
        return None
    return 1.0 / row.underlying_to_position_multiplier  # coins per contract


def _bitmex_instrument(row: _BitmexRow) -> Instrument | None:
    if row.is_quanto or row.typ not in ("FFWCSX", "FFCCSX"):
        return None  # quanto notional needs a cross rate; spot and indices are not futures
    size = _bitmex_size(row)
    if size is None or size <= 0:
        return None
    expiry = iso_ms(row.expiry) if row.typ == "FFCCSX" and row.expiry else None
    kind = INVERSE if row.is_inverse else LINEAR
    return make_instrument(
        Venue.BITMEX,
        row.symbol,
        row.underlying,
        row.quote_currency,
        kind,
        contract_size=size,
        expiry=expiry,
    )


def parse_bitmex(body: bytes) -> list[Instrument]:
    """``/api/v1/instrument/active``."""
    rows = msgspec.json.decode(body, type=list[_BitmexRow], strict=False)
    found = (_bitmex_instrument(row) for row in rows)
    return [inst for inst in found if inst is not None]


# --- fetching -----------------------------------------------------------------------------


def _bybit_pages(base: str, fetch: Fetch, timeout_s: float) -> list[Instrument]:
    out: list[Instrument] = []
    for category in ("linear", "inverse"):
        cursor = ""
        for _ in range(100):  # a bound on pages, in case a cursor never ends
            url = f"{base}/v5/market/instruments-info?category={category}&limit=1000"
            page, cursor = parse_bybit(
                fetch(url + (f"&cursor={cursor}" if cursor else ""), timeout_s)
            )
            out += page
            if not cursor:
                break
    return out


def fetch_venue(
    venue: Venue, base: str, fetch: Fetch = fetch_bytes, timeout_s: float = 10.0
) -> list[Instrument]:
    """Every listed future/perpetual of ``venue`` from its REST API at ``base``."""
    base = base.rstrip("/")
    if venue is Venue.BINANCE:
        return parse_binance(venue, fetch(f"{base}/fapi/v1/exchangeInfo", timeout_s))
    if venue is Venue.BINANCE_COINM:
        return parse_binance(venue, fetch(f"{base}/dapi/v1/exchangeInfo", timeout_s))
    if venue is Venue.BYBIT:
        return _bybit_pages(base, fetch, timeout_s)
    if venue is Venue.OKX:
        url = f"{base}/api/v5/public/instruments?instType="
        return parse_okx(fetch(url + "SWAP", timeout_s)) + parse_okx(
            fetch(url + "FUTURES", timeout_s)
        )
    if venue is Venue.DERIBIT:
        url = f"{base}/api/v2/public/get_instruments?currency=any&kind=future&expired=false"
        return parse_deribit(fetch(url, timeout_s))
    return parse_bitmex(fetch(f"{base}/api/v1/instrument/active", timeout_s))
