"""Reading venue times and liquidations back out of recorded frames (test helper)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from liqwatch.schema import RecordedFrame, Side

OKX_CT_VAL = {"BTC-USDT-SWAP": 0.01, "ETH-USDT-SWAP": 0.1}


def venue_ts(rec: RecordedFrame) -> int:
    """The venue's own time stamp of a recorded frame, whatever its channel."""
    frame: Any = rec.frame
    channel = rec.channel
    if channel == "!forceOrder@arr":
        return int(frame["E"])
    if channel == "!markPrice@arr@1s":
        return int(frame[0]["E"])
    if channel == "/fapi/v1/openInterest":
        return int(frame["time"])
    if channel.startswith(("allLiquidation.", "tickers.")):
        return int(frame["ts"])
    if channel == "liquidation-orders":
        return int(frame["data"][0]["details"][0]["ts"])
    return int(frame["data"][0]["ts"])


@dataclass(frozen=True)
class SeenLiquidation:
    venue: str
    symbol: str
    ts: int
    side: Side  # as the frame's side convention says
    qty: float


def liquidations_in(rec: RecordedFrame) -> list[SeenLiquidation]:
    """Liquidations in a frame, with the venue's side convention decoded by its documentation."""
    frame: Any = rec.frame
    if rec.channel == "!forceOrder@arr":
        o = frame["o"]
        side = {"SELL": Side.LONG, "BUY": Side.SHORT}[o["S"]]
        return [SeenLiquidation(rec.venue, o["s"], o["T"], side, float(o["q"]))]
    if rec.channel.startswith("allLiquidation."):
        return [
            SeenLiquidation(
                rec.venue,
                d["s"],
                d["T"],
                {"Buy": Side.LONG, "Sell": Side.SHORT}[d["S"]],
                float(d["v"]),
            )
            for d in frame["data"]
        ]
    if rec.channel == "liquidation-orders":
        out = []
        for entry in frame["data"]:
            for d in entry["details"]:
                side = {("sell", "long"): Side.LONG, ("buy", "short"): Side.SHORT}[
                    (d["side"], d["posSide"])
                ]
                qty = float(d["sz"]) * OKX_CT_VAL[entry["instId"]]
                out.append(SeenLiquidation(rec.venue, entry["instId"], int(d["ts"]), side, qty))
        return out
    return []
