"""Instrument metadata: built-in book, conversions, REST loading, on-disk cache, refresh."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from liqwatch.schema import ContractKind, Venue
from producers.instrument_refresh import InstrumentCache, InstrumentRefresher
from producers.instruments import ContractUnit, InstrumentBook, UnknownInstrument
from producers.metrics import ProducerMetrics
from tests.producers.fake_http import FakeHttp
from tests.producers.venue_fixtures import FIXTURES


def _body(venue: str, name: str) -> bytes:
    return (FIXTURES / venue / name).read_bytes()


BYBIT_PAGE_2 = (
    "/v5/market/instruments-info?category=linear&limit=1000&cursor=first%3DWIFUSDT%26last%3DWIFUSDT"
)
ROUTES = {
    "/fapi/v1/exchangeInfo": _body("binance", "rest_exchangeInfo.json"),
    "/dapi/v1/exchangeInfo": _body("binance_coinm", "rest_exchangeInfo.json"),
    "/v5/market/instruments-info?category=linear&limit=1000": _body(
        "bybit", "rest_instruments_linear_page1.json"
    ),
    BYBIT_PAGE_2: _body("bybit", "rest_instruments_linear_page2.json"),
    "/v5/market/instruments-info?category=inverse&limit=1000": _body(
        "bybit", "rest_instruments_inverse.json"
    ),
    "/api/v5/public/instruments?instType=SWAP": _body("okx", "rest_instruments_swap.json"),
    "/api/v5/public/instruments?instType=FUTURES": _body("okx", "rest_instruments_futures.json"),
    "/api/v2/public/get_instruments?currency=any&kind=future&expired=false": _body(
        "deribit", "rest_get_instruments.json"
    ),
    "/api/v1/instrument/active": _body("bitmex", "rest_instrument_active.json"),
}
# symbols that only the REST fixtures list (not in the built-in book)
NEW_SYMBOLS = {
    Venue.BINANCE: ("1000PEPEUSDT", "1000PEPE-USDT-PERP"),
    Venue.BINANCE_COINM: ("BTCUSD_251226", "BTC-USD-251226"),
    Venue.BYBIT: ("BTCUSDZ25", "BTC-USD-251226"),
    Venue.OKX: ("PEPE-USDT-SWAP", "PEPE-USDT-PERP"),
    Venue.DERIBIT: ("AVAX_USDC-PERPETUAL", "AVAX-USDC-PERP"),
    Venue.BITMEX: ("XBTZ25", "BTC-USD-251226"),
}


@pytest.fixture
def rest() -> Iterator[FakeHttp]:
    server = FakeHttp(dict(ROUTES)).start()
    yield server
    server.stop()


def _refresher(
    book: InstrumentBook, rest: FakeHttp, cache: Path | None, **kw: object
) -> InstrumentRefresher:
    urls = dict.fromkeys(Venue, rest.url)
    store = InstrumentCache(cache) if cache else None
    return InstrumentRefresher(book, store, rest_urls=urls, timeout_s=5, **kw)  # type: ignore[arg-type]


def test_default_book_covers_the_common_perps_on_every_venue() -> None:
    book = InstrumentBook.default()
    for venue in Venue:
        assets = {inst.asset for inst in book.all(venue) if inst.perpetual}
        assert {"BTC", "ETH", "SOL", "XRP", "DOGE"} <= assets, venue


def test_lookup_of_an_unknown_symbol_names_it() -> None:
    with pytest.raises(UnknownInstrument, match="'NOPE' on okx"):
        InstrumentBook.default().lookup(Venue.OKX, "NOPE")


def test_contract_values_in_base_and_usd() -> None:
    book = InstrumentBook.default()
    okx_linear = book.lookup(Venue.OKX, "BTC-USDT-SWAP")
    assert okx_linear.value(35, 100_000.0) == pytest.approx((0.35, 35_000.0))
    coinm = book.lookup(Venue.BINANCE_COINM, "BTCUSD_PERP")
    assert coinm.kind is ContractKind.INVERSE and coinm.contract_unit is ContractUnit.USD
    assert coinm.value(25, 100_000.0) == pytest.approx((0.025, 2500.0))
    assert book.lookup(Venue.BITMEX, "XBTUSD").instrument == "BTC-USD-INVERSE"
    assert book.lookup(Venue.DERIBIT, "SOL_USDC-PERPETUAL").instrument == "SOL-USDC-PERP"


def test_rest_load_adds_every_venue_and_skips_what_cannot_be_valued(
    rest: FakeHttp, tmp_path: Path
) -> None:
    book = InstrumentBook.default()
    sources = _refresher(book, rest, tmp_path / "instruments.json").load(list(Venue))
    assert sources == dict.fromkeys(Venue, "rest")
    for venue, (symbol, instrument) in NEW_SYMBOLS.items():
        assert book.lookup(venue, symbol).instrument == instrument
    assert book.lookup(Venue.BITMEX, "XBTUSDT").contract_size == pytest.approx(1e-6)
    assert book.lookup(Venue.OKX, "PEPE-USDT-SWAP").contract_size == 10_000_000
    assert book.lookup(Venue.BYBIT, "BTC-26DEC25").quote == "USDC"
    with pytest.raises(UnknownInstrument):
        book.lookup(Venue.BITMEX, "ETHUSD")  # quanto: USD value needs a cross rate
    with pytest.raises(UnknownInstrument):
        book.lookup(Venue.BINANCE, "OLDUSDT")  # no contract type: not a listed future
    assert any("cursor=" in path for path in rest.requests)  # bybit followed the next page


def test_cache_serves_a_restart_without_network(rest: FakeHttp, tmp_path: Path) -> None:
    cache = tmp_path / "instruments.json"
    _refresher(InstrumentBook.default(), rest, cache).load([Venue.OKX])
    rest.down = True
    fresh = InstrumentBook.default()
    assert _refresher(fresh, rest, cache).load([Venue.OKX]) == {Venue.OKX: "cache"}
    assert fresh.lookup(Venue.OKX, "PEPE-USDT-SWAP").asset == "PEPE"
    stale = InstrumentBook.default()
    sources = _refresher(stale, rest, cache, max_age_s=0).load([Venue.OKX, Venue.BYBIT])
    assert sources == {Venue.OKX: "stale_cache", Venue.BYBIT: "default"}
    assert stale.lookup(Venue.OKX, "PEPE-USDT-SWAP").asset == "PEPE"
    assert stale.lookup(Venue.BYBIT, "BTCUSDT").instrument == "BTC-USDT-PERP"


def test_corrupt_cache_is_ignored(rest: FakeHttp, tmp_path: Path) -> None:
    cache = tmp_path / "instruments.json"
    cache.write_text("{not json")
    assert _refresher(InstrumentBook.default(), rest, cache).load([Venue.DERIBIT]) == {
        Venue.DERIBIT: "rest"
    }


async def test_periodic_refresh_picks_up_new_listings_and_counts(rest: FakeHttp) -> None:
    registry = CollectorRegistry()
    metrics = ProducerMetrics(registry)
    book = InstrumentBook.default()
    refresher = _refresher(book, rest, None, metrics=metrics)
    rest.down = True
    assert await refresher.refresh([Venue.BITMEX]) == {Venue.BITMEX: -1}
    rest.down = False
    stop = asyncio.Event()
    task = asyncio.create_task(refresher.run([Venue.BITMEX], interval_s=0.05, stop=stop))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if Venue.BITMEX in {v for v in Venue if "XBTZ25" in book.symbols(v)}:
            break
    stop.set()
    await asyncio.wait_for(task, 2)
    assert book.lookup(Venue.BITMEX, "XBTZ25").expiry is not None
    labels = {"venue": "bitmex", "result": "failed"}
    assert registry.get_sample_value("liqwatch_producer_instrument_refreshes_total", labels) == 1
    labels["result"] = "rest"
    assert (
        registry.get_sample_value("liqwatch_producer_instrument_refreshes_total", labels) or 0
    ) >= 1
