"""Symbol selection per venue: every perpetual, assets, symbols, instruments and globs."""

from __future__ import annotations

from liqwatch.schema import Venue
from producers.instruments import InstrumentBook
from producers.live.symbols import select_instruments
from producers.venues import binance, bybit, okx
from tests.producers.venue_fixtures import fixture_book


def _symbols(
    venue: Venue, selection: object, book: InstrumentBook | None = None
) -> tuple[list[str], bool]:
    found, everything = select_instruments(book or fixture_book(), venue, selection)  # type: ignore[arg-type]
    return [i.symbol for i in found], everything


def test_nothing_star_or_all_selects_every_perpetual() -> None:
    for selection in (None, [], ["*"], ["all"], {"okx": ["*"]}):
        symbols, everything = _symbols(Venue.OKX, selection)
        assert everything and "BTC-USDT-SWAP" in symbols
        assert "BTC-USD-251226" not in symbols  # dated futures only when asked for


def test_assets_symbols_instruments_and_globs() -> None:
    assert _symbols(Venue.BYBIT, ["btc"]) == (["BTCUSD", "BTCUSDT"], False)
    assert _symbols(Venue.BINANCE, ["ETHUSDT", "SOL*"]) == (["ETHUSDT", "SOLUSDT"], False)
    assert _symbols(Venue.OKX, ["*-USD-INVERSE"])[0] == [
        "BTC-USD-SWAP",
        "DOGE-USD-SWAP",
        "ETH-USD-SWAP",
        "SOL-USD-SWAP",
        "XRP-USD-SWAP",
    ]
    assert _symbols(Venue.OKX, ["*-251226"])[0] == ["BTC-USD-251226", "BTC-USDT-251226"]
    assert _symbols(Venue.BITMEX, {"bitmex": ["BTC"], "okx": ["ETH"]})[0] == ["XBTUSD", "XBTUSDT"]
    assert _symbols(Venue.DERIBIT, ["NOPE"]) == ([], False)


def test_subscriptions_follow_the_selection() -> None:
    book = fixture_book()
    btc, everything = select_instruments(book, Venue.BINANCE, ["BTC"])
    (endpoint,) = binance.PROTOCOL.endpoints(btc, "wss://x", everything, 20)
    assert endpoint.url == "wss://x/stream"
    assert "btcusdt@forceOrder" in endpoint.subscribe[0]
    every, everything = select_instruments(book, Venue.BINANCE, None)
    (endpoint,) = binance.PROTOCOL.endpoints(every, "wss://x", everything, 20)
    assert (
        "!forceOrder@arr" in endpoint.subscribe[0]
        and "usdt@forceOrder" not in endpoint.subscribe[0]
    )
    both, _ = select_instruments(book, Venue.BYBIT, ["BTC"])
    paths = [e.url for e in bybit.PROTOCOL.endpoints(both, "wss://x", False, 20)]
    assert paths == ["wss://x/v5/public/linear", "wss://x/v5/public/inverse"]
    dated, _ = select_instruments(book, Venue.OKX, ["BTC-USD-251226", "BTC"])
    (endpoint,) = okx.PROTOCOL.endpoints(dated, "wss://x", False, 20)
    assert (
        '"instType":"FUTURES"' in endpoint.subscribe[0]
        and '"instType":"SWAP"' in endpoint.subscribe[0]
    )
