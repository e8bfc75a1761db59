"""Generated frames follow the venues' documented shapes, cadences and side conventions."""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from typing import Any

import pytest

from liqwatch.schema import RecordedFrame, Side, Venue
from producers.synthetic import load_scenario
from producers.synthetic.market import ForcedLiquidation, simulate
from tests.synthetic.conftest import Generated
from tests.synthetic.venue_time import liquidations_in, venue_ts

# The venues' documented example frames (values illustrative; names, types and units exact).
DOCUMENTED: dict[str, Any] = {
    "!forceOrder@arr": json.loads(
        '{"e":"forceOrder","E":1760130312345,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC",'
        '"q":"0.740","p":"112350.10","ap":"112401.80","X":"FILLED","l":"0.740","z":"0.740",'
        '"T":1760130312340}}'
    ),
    "!markPrice@arr@1s": json.loads(
        '[{"e":"markPriceUpdate","E":1760130312000,"s":"BTCUSDT","p":"112380.50000000",'
        '"i":"112371.22000000","P":"112360.10000000","r":"0.00010000","T":1760140800000}]'
    ),
    "/fapi/v1/openInterest": json.loads(
        '{"openInterest":"81234.512","symbol":"BTCUSDT","time":1760130312011}'
    ),
    "allLiquidation.": json.loads(
        '{"topic":"allLiquidation.BTCUSDT","type":"snapshot","ts":1760130312500,"data":[{"T":'
        '1760130312231,"s":"BTCUSDT","S":"Buy","v":"1.250","p":"112290.40"}]}'
    ),
    "tickers.snapshot": json.loads(
        '{"topic":"tickers.BTCUSDT","type":"snapshot","cs":24987956059,"ts":1760130312100,"data":'
        '{"symbol":"BTCUSDT","lastPrice":"112380.00","markPrice":"112381.20","indexPrice":'
        '"112372.90","openInterest":"52311.402","openInterestValue":"5878901234.55","fundingRate":'
        '"0.0001","nextFundingTime":"1760140800000"}}'
    ),
    "tickers.delta": json.loads(
        '{"topic":"tickers.BTCUSDT","type":"delta","cs":24987956060,"ts":1760130312200,"data":'
        '{"symbol":"BTCUSDT","markPrice":"112377.90","openInterest":"52318.100"}}'
    ),
    "liquidation-orders": json.loads(
        '{"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"details":[{"bkLoss":'
        '"0","bkPx":"112301.7","ccy":"","posSide":"long","side":"sell","sz":"35","ts":'
        '"1760130312456"}],"instFamily":"BTC-USDT","instId":"BTC-USDT-SWAP","instType":"SWAP",'
        '"uly":"BTC-USDT"}]}'
    ),
    "open-interest": json.loads(
        '{"arg":{"channel":"open-interest","instId":"BTC-USDT-SWAP"},"data":[{"instId":'
        '"BTC-USDT-SWAP","instType":"SWAP","oi":"2812345","oiCcy":"28123.45","ts":"1760130312000"}]}'
    ),
    "mark-price": json.loads(
        '{"arg":{"channel":"mark-price","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP",'
        '"instType":"SWAP","markPx":"112380.1","ts":"1760130312000"}]}'
    ),
}


def shape(value: Any) -> Any:
    """Key names and JSON types, recursively: what a parser depends on."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        shapes = {json.dumps(shape(item), sort_keys=True) for item in value}
        return sorted(shapes)
    return type(value).__name__


def documented_key(rec: RecordedFrame) -> str:
    if rec.channel.startswith("allLiquidation."):
        return "allLiquidation."
    if rec.channel.startswith("tickers."):
        return f"tickers.{rec.frame['type']}"
    return rec.channel


def is_number(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value)


def numeric_mismatches(documented: Any, generated: Any, path: str = "") -> list[str]:
    """Paths where the documentation has a number-in-a-string and the frame has anything else."""
    if isinstance(documented, dict):
        return [
            bad
            for key, value in generated.items()
            for bad in numeric_mismatches(documented[key], value, f"{path}.{key}")
        ]
    if isinstance(documented, list):
        return [bad for item in generated for bad in numeric_mismatches(documented[0], item, path)]
    if isinstance(documented, str) and is_number(documented) and not is_number(generated):
        return [f"{path}={generated!r}"]
    return []


def test_numbers_in_strings_parse_as_finite_numbers(library: dict[str, Generated]) -> None:
    checked = 0
    for generated in library.values():
        for rec in generated.frames:
            key = documented_key(rec)
            reference = DOCUMENTED["tickers.snapshot" if key == "tickers.delta" else key]
            assert numeric_mismatches(reference, rec.frame) == [], rec.channel
            checked += 1
    assert checked > 10_000


def test_bybit_tickers_snapshot_then_deltas(library: dict[str, Generated]) -> None:
    snapshot_keys = set(DOCUMENTED["tickers.snapshot"]["data"])
    for generated in library.values():
        last_cs: dict[str, int] = {}
        for rec in generated.frames:
            if not rec.channel.startswith("tickers."):
                continue
            frame = rec.frame
            symbol = rec.channel.removeprefix("tickers.")
            if symbol not in last_cs:
                assert frame["type"] == "snapshot"
            else:
                assert frame["cs"] > last_cs[symbol]
            last_cs[symbol] = frame["cs"]
            assert frame["topic"] == rec.channel
            assert frame["data"]["symbol"] == symbol
            assert set(frame["data"]) <= snapshot_keys
            assert all(isinstance(v, str) for v in frame["data"].values())
        if any(v.venue == "bybit" for v in load_scenario(generated.truth.scenario).venues):
            assert last_cs, generated.truth.scenario


def test_recording_is_sorted_by_receive_time_after_venue_time(
    library: dict[str, Generated],
) -> None:
    for generated in library.values():
        recv = [rec.ts_recv for rec in generated.frames]
        assert recv == sorted(recv)
        for rec in generated.frames:
            lag = rec.ts_recv - venue_ts(rec)
            assert 0 <= lag < 5_000, (rec.channel, lag)


def test_recording_lines_have_the_documented_keys(library: dict[str, Generated]) -> None:
    first = library["demo"].path.read_bytes().splitlines()[0]
    assert list(json.loads(first)) == ["venue", "channel", "ts_recv", "frame"]


def test_binance_force_orders_are_sampled_one_per_symbol_per_second(
    library: dict[str, Generated],
) -> None:
    checked = 0
    for generated in library.values():
        pushes: dict[str, list[int]] = defaultdict(list)
        for rec in generated.frames:
            if rec.channel == "!forceOrder@arr":
                assert rec.frame["o"]["T"] <= rec.frame["E"]
                pushes[rec.frame["o"]["s"]].append(rec.frame["E"])
        for times in pushes.values():
            times.sort()
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert all(gap >= 1000 for gap in gaps)
            checked += len(times)
    assert checked > 100


def test_binance_shows_fewer_liquidations_than_happened(library: dict[str, Generated]) -> None:
    generated = library["binance_only_sampled"]
    shown = sum(rec.channel == "!forceOrder@arr" for rec in generated.frames)
    cascade = next(lab for lab in generated.truth.labels if lab.kind == "cascade")
    events = int(cascade.note.split("events=")[1].split()[0])
    assert 0 < shown < events


def test_binance_open_interest_polled_every_ten_seconds(library: dict[str, Generated]) -> None:
    polls = [
        rec.frame["time"]
        for rec in library["long_cascade"].frames
        if rec.channel == "/fapi/v1/openInterest"
    ]
    assert {b - a for a, b in itertools.pairwise(polls)} == {10_000}
    assert len(polls) == 30 * 6


def test_binance_mark_price_array_carries_every_asset(library: dict[str, Generated]) -> None:
    arrays = [rec.frame for rec in library["demo"].frames if rec.channel == "!markPrice@arr@1s"]
    assert len(arrays) == 25 * 60
    assert all({m["s"] for m in arr} == {"BTCUSDT", "ETHUSDT"} for arr in arrays)


def _truth_index(scenario: str) -> dict[tuple[str, int], list[ForcedLiquidation]]:
    index: dict[tuple[str, int], list[ForcedLiquidation]] = defaultdict(list)
    for tape in simulate(load_scenario(scenario)):
        for liq in tape.liquidations:
            index[(str(liq.venue), liq.ts)].append(liq)
    return index


@pytest.mark.parametrize("scenario", ["demo", "long_cascade", "short_squeeze"])
def test_frame_sides_and_sizes_match_the_truth(
    library: dict[str, Generated], scenario: str
) -> None:
    truth = _truth_index(scenario)
    counts: dict[tuple[str, Side], int] = defaultdict(int)
    for rec in library[scenario].frames:
        for seen in liquidations_in(rec):
            candidates = truth[(seen.venue, seen.ts)]
            assert any(
                liq.side is seen.side and abs(liq.qty - seen.qty) < 1e-9 for liq in candidates
            ), (rec.frame, candidates)
            counts[(seen.venue, seen.side)] += 1
    sides = {Side.SHORT} if scenario == "short_squeeze" else {Side.LONG}
    for venue in (Venue.BINANCE, Venue.BYBIT, Venue.OKX):
        assert any(counts[(str(venue), side)] > 0 for side in sides), (venue, dict(counts))


def test_a_long_liquidated_reads_as_each_venue_documents(library: dict[str, Generated]) -> None:
    """Long liquidated: Binance order SELL, Bybit position Buy, OKX sell/long."""
    cascade = next(lab for lab in library["long_cascade"].truth.labels if lab.kind == "cascade")
    inside = [
        rec
        for rec in library["long_cascade"].frames
        if cascade.start_ms <= venue_ts(rec) <= cascade.end_ms + 1000
    ]
    binance = [r.frame["o"]["S"] for r in inside if r.channel == "!forceOrder@arr"]
    bybit = [d["S"] for r in inside if r.channel.startswith("allLiq") for d in r.frame["data"]]
    okx = [
        (d["side"], d["posSide"])
        for r in inside
        if r.channel == "liquidation-orders"
        for d in r.frame["data"][0]["details"]
    ]
    assert binance and set(binance) == {"SELL"}
    assert bybit and set(bybit) == {"Buy"}
    assert okx and set(okx) == {("sell", "long")}


def test_okx_carries_only_part_of_its_liquidations(library: dict[str, Generated]) -> None:
    truth = _truth_index("demo")
    happened = sum(len(v) for (venue, _), v in truth.items() if venue == "okx")
    shown = sum(rec.channel == "liquidation-orders" for rec in library["demo"].frames)
    assert 0.5 * happened < shown < 0.9 * happened  # report_fraction 0.7
