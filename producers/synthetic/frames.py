"""Venue-native frames, in the documented shapes (the venues' API documentation).

Pure functions from simulated values to the exact JSON objects each venue sends: field names,
strings versus numbers, units and side conventions as documented. Keep these in step with
``tests/synthetic/test_frames.py``, which holds the documented examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from liqwatch.schema import Side, Venue

FUNDING_PERIOD_MS = 8 * 3600 * 1000


@dataclass(frozen=True)
class Instrument:
    venue: Venue
    asset: str
    symbol: str  # the venue's symbol / instId
    price_dp: int  # decimals of the price tick
    lot: float  # quantity step in base units (OKX: one contract = ctVal)
    qty_dp: int
    ct_val: float = 1.0  # OKX contract value in base units


INSTRUMENTS: dict[tuple[Venue, str], Instrument] = {
    (Venue.BINANCE, "BTC"): Instrument(Venue.BINANCE, "BTC", "BTCUSDT", 2, 0.001, 3),
    (Venue.BINANCE, "ETH"): Instrument(Venue.BINANCE, "ETH", "ETHUSDT", 2, 0.001, 3),
    (Venue.BYBIT, "BTC"): Instrument(Venue.BYBIT, "BTC", "BTCUSDT", 2, 0.001, 3),
    (Venue.BYBIT, "ETH"): Instrument(Venue.BYBIT, "ETH", "ETHUSDT", 2, 0.01, 2),
    (Venue.OKX, "BTC"): Instrument(Venue.OKX, "BTC", "BTC-USDT-SWAP", 1, 0.01, 2, 0.01),
    (Venue.OKX, "ETH"): Instrument(Venue.OKX, "ETH", "ETH-USDT-SWAP", 2, 0.1, 1, 0.1),
}


def instrument(venue: Venue, asset: str) -> Instrument:
    return INSTRUMENTS[(venue, asset)]


def next_funding_ms(ts: int) -> int:
    return (ts // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS


def _px(inst: Instrument, price: float) -> str:
    return f"{price:.{inst.price_dp}f}"


def _qty(inst: Instrument, qty: float) -> str:
    return f"{qty:.{inst.qty_dp}f}"


def contracts(inst: Instrument, qty: float) -> int:
    return round(qty / inst.ct_val)


@dataclass(frozen=True)
class LiqFrameInput:
    """What a venue reports about one forced liquidation."""

    ts: int
    side: Side  # the position liquidated
    qty: float  # base units, already on the venue's lot grid
    bankruptcy: float
    fill_price: float


# --- Binance USDⓈ-M -------------------------------------------------------------------------


def binance_force_order(inst: Instrument, liq: LiqFrameInput, event_ms: int) -> dict[str, Any]:
    qty = _qty(inst, liq.qty)
    return {
        "e": "forceOrder",
        "E": event_ms,
        "o": {
            "s": inst.symbol,
            "S": "SELL" if liq.side is Side.LONG else "BUY",  # order side closes the position
            "o": "LIMIT",
            "f": "IOC",
            "q": qty,
            "p": _px(inst, liq.bankruptcy),
            "ap": _px(inst, liq.fill_price),
            "X": "FILLED",
            "l": qty,
            "z": qty,
            "T": liq.ts,
        },
    }


def binance_mark_price(
    inst: Instrument, event_ms: int, mark: float, index: float, funding: float
) -> dict[str, Any]:
    return {
        "e": "markPriceUpdate",
        "E": event_ms,
        "s": inst.symbol,
        "p": f"{mark:.8f}",
        "i": f"{index:.8f}",
        "P": f"{index:.8f}",
        "r": f"{funding:.8f}",
        "T": next_funding_ms(event_ms),
    }


def binance_open_interest(inst: Instrument, time_ms: int, oi_base: float) -> dict[str, Any]:
    return {"openInterest": f"{oi_base:.3f}", "symbol": inst.symbol, "time": time_ms}


# --- Bybit v5 linear ------------------------------------------------------------------------


def bybit_all_liquidation(
    inst: Instrument, push_ms: int, liqs: list[LiqFrameInput]
) -> dict[str, Any]:
    return {
        "topic": f"allLiquidation.{inst.symbol}",
        "type": "snapshot",
        "ts": push_ms,
        "data": [
            {
                "T": liq.ts,
                "s": inst.symbol,
                "S": "Buy" if liq.side is Side.LONG else "Sell",  # the position's side
                "v": _qty(inst, liq.qty),
                "p": _px(inst, liq.bankruptcy),
            }
            for liq in liqs
        ],
    }


def bybit_ticker_fields(
    inst: Instrument, ts: int, *, mark: float, index: float, oi_base: float, funding: float
) -> dict[str, str]:
    """Every ticker field we simulate, as Bybit formats them (all strings)."""
    return {
        "symbol": inst.symbol,
        "lastPrice": _px(inst, mark),
        "markPrice": _px(inst, mark),
        "indexPrice": _px(inst, index),
        "openInterest": f"{oi_base:.3f}",
        "openInterestValue": f"{oi_base * mark:.2f}",
        "fundingRate": f"{funding:.4f}",
        "nextFundingTime": str(next_funding_ms(ts)),
    }


def bybit_ticker(
    inst: Instrument, ts: int, cs: int, fields: dict[str, str], previous: dict[str, str] | None
) -> dict[str, Any]:
    """A snapshot when there is no previous state, else a delta of the changed fields."""
    if previous is None:
        kind, data = "snapshot", dict(fields)
    else:
        changed = {k: v for k, v in fields.items() if previous.get(k) != v}
        kind, data = "delta", {"symbol": inst.symbol, **changed}
    return {"topic": f"tickers.{inst.symbol}", "type": kind, "cs": cs, "ts": ts, "data": data}


# --- OKX v5 SWAP ----------------------------------------------------------------------------


def okx_liquidation(inst: Instrument, liq: LiqFrameInput) -> dict[str, Any]:
    family = inst.symbol.removesuffix("-SWAP")
    long = liq.side is Side.LONG
    detail = {
        "bkLoss": "0",
        "bkPx": _px(inst, liq.bankruptcy),
        "ccy": "",
        "posSide": "long" if long else "short",
        "side": "sell" if long else "buy",  # order side
        "sz": str(contracts(inst, liq.qty)),
        "ts": str(liq.ts),
    }
    return {
        "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
        "data": [
            {
                "details": [detail],
                "instFamily": family,
                "instId": inst.symbol,
                "instType": "SWAP",
                "uly": family,
            }
        ],
    }


def okx_open_interest(inst: Instrument, ts: int, oi_base: float) -> dict[str, Any]:
    return {
        "arg": {"channel": "open-interest", "instId": inst.symbol},
        "data": [
            {
                "instId": inst.symbol,
                "instType": "SWAP",
                "oi": str(contracts(inst, oi_base)),
                "oiCcy": f"{contracts(inst, oi_base) * inst.ct_val:.{inst.qty_dp}f}",
                "ts": str(ts),
            }
        ],
    }


def okx_mark_price(inst: Instrument, ts: int, mark: float) -> dict[str, Any]:
    return {
        "arg": {"channel": "mark-price", "instId": inst.symbol},
        "data": [
            {"instId": inst.symbol, "instType": "SWAP", "markPx": _px(inst, mark), "ts": str(ts)}
        ],
    }
