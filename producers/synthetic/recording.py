"""From the simulated market to a recording: what each venue would have sent, and when.

Each venue gets its own channels and cadences (docs/synthetic.md, "Venue feeds"): Binance
samples liquidations (latest per symbol per 1000 ms) and is polled for open interest every
10 s; Bybit batches every liquidation every 500 ms and sends tickers as snapshot + deltas; OKX
carries only a share of liquidations. A venue in an outage sends nothing. Receive times are
venue time plus a seeded latency, and the recording is sorted by receive time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from liqwatch.schema import RecordedFrame, Venue
from producers.synthetic import frames as f
from producers.synthetic.market import AssetTape, ForcedLiquidation
from producers.synthetic.scenario import Scenario, VenueSpec
from producers.synthetic.truth import Silence

_LATENCY_STREAM, _REPORT_STREAM = 20_000, 30_000
INDEX_DISCOUNT = 0.9999  # index a hair under mark: the perpetual's usual small premium
BINANCE_OI_POLL_MS = 10_000
OKX_OI_MS = 3_000
BYBIT_LIQ_BATCH_MS = 500
BINANCE_LIQ_WINDOW_MS = 1_000


@dataclass(frozen=True)
class VenueFrame:
    ts: int  # venue time
    channel: str
    frame: Any


def silences(scenario: Scenario) -> list[Silence]:
    return [
        Silence(
            o.venue,
            scenario.start_ms + round(o.at_min * 60_000),
            scenario.start_ms + round((o.at_min + o.minutes) * 60_000),
        )
        for o in scenario.outages
    ]


def is_silent(venue: Venue, ts: int, gaps: Sequence[Silence]) -> bool:
    return any(g.venue == venue and g.start_ms <= ts < g.end_ms for g in gaps)


def push_time(venue: Venue, ts: int) -> int:
    """When the venue sends a liquidation that happened at ``ts``."""
    if venue is Venue.BINANCE:
        return (ts // BINANCE_LIQ_WINDOW_MS + 1) * BINANCE_LIQ_WINDOW_MS
    if venue is Venue.BYBIT:
        return (ts // BYBIT_LIQ_BATCH_MS + 1) * BYBIT_LIQ_BATCH_MS
    return ts


def reported_flags(scenario: Scenario, tape: AssetTape, asset_index: int) -> list[bool]:
    """Whether each forced liquidation reaches the recording (outages, OKX partial feed)."""
    gaps = silences(scenario)
    share = {v.venue: v.report_fraction for v in scenario.venues}
    draws = np.random.default_rng([scenario.seed, asset_index, _REPORT_STREAM]).random(
        len(tape.liquidations)
    )
    return [
        not is_silent(liq.venue, push_time(liq.venue, liq.ts), gaps)
        and (liq.venue is not Venue.OKX or bool(draw < share[liq.venue]))
        for liq, draw in zip(tape.liquidations, draws, strict=True)
    ]


def record(
    scenario: Scenario, tapes: list[AssetTape], reported: list[list[bool]]
) -> list[RecordedFrame]:
    """Every venue's frames, outages removed, stamped with a receive time and sorted by it."""
    gaps = silences(scenario)
    total_share = sum(v.share for v in scenario.venues)
    keyed: list[tuple[int, int, int, RecordedFrame]] = []
    for vi, spec in enumerate(scenario.venues):
        feed = VenueFeed(scenario, spec, spec.share / total_share, vi)
        sent = [fr for fr in feed.frames(tapes, reported) if not is_silent(spec.venue, fr.ts, gaps)]
        keyed += _received(scenario.seed, vi, spec, sent)
    keyed.sort(key=lambda item: item[:3])
    return [item[3] for item in keyed]


def _received(
    seed: int, vi: int, spec: VenueSpec, sent: list[VenueFrame]
) -> list[tuple[int, int, int, RecordedFrame]]:
    """(ts_recv, venue index, send order, frame): the sort key keeps equal times deterministic."""
    rng = np.random.default_rng([seed, _LATENCY_STREAM + vi])
    jitter = rng.exponential(max(spec.jitter_ms, 1e-9), len(sent)).tolist()
    out: list[tuple[int, int, int, RecordedFrame]] = []
    for seq, (fr, extra) in enumerate(zip(sent, jitter, strict=True)):
        ts_recv = fr.ts + spec.latency_ms + int(extra)
        frame = RecordedFrame(venue=spec.venue, channel=fr.channel, ts_recv=ts_recv, frame=fr.frame)
        out.append((ts_recv, vi, seq, frame))
    return out


class VenueFeed:
    """Every frame one venue sends over the scenario, in venue time (before outages)."""

    def __init__(self, scenario: Scenario, spec: VenueSpec, share: float, index: int) -> None:
        self.s = scenario
        self.spec = spec
        self.share = share
        self.index = index
        self.gaps = silences(scenario)

    def frames(self, tapes: list[AssetTape], reported: list[list[bool]]) -> list[VenueFrame]:
        out: list[VenueFrame] = []
        for tape, flags in zip(tapes, reported, strict=True):
            liqs = [
                liq
                for liq, seen in zip(tape.liquidations, flags, strict=True)
                if seen and liq.venue is self.spec.venue
            ]
            out += self._liquidation_frames(tape.asset, liqs)
        out += self._market_frames(tapes)
        return out

    def _inst(self, asset: str) -> f.Instrument:
        return f.instrument(self.spec.venue, asset)

    def _oi(self, tape: AssetTape, second: int) -> float:
        """Open interest in base units: the venue's outside positions plus the simulated ones."""
        spec = self.s.asset(tape.asset)
        outside = spec.base_oi_usd * self.share / spec.start_price
        return max(0.0, outside + tape.open_qty[second][self.index])  # no -0.000 from rounding

    # --- liquidations -----------------------------------------------------------------------

    def _liquidation_frames(self, asset: str, liqs: list[ForcedLiquidation]) -> list[VenueFrame]:
        inst = self._inst(asset)
        venue = self.spec.venue
        if venue is Venue.BINANCE:
            return [
                VenueFrame(push, "!forceOrder@arr", f.binance_force_order(inst, _input(last), push))
                for push, batch in _batches(liqs, BINANCE_LIQ_WINDOW_MS)
                for last in batch[-1:]  # the snapshot: only the latest in the window
            ]
        if venue is Venue.BYBIT:
            return [
                VenueFrame(
                    push,
                    f"allLiquidation.{inst.symbol}",
                    f.bybit_all_liquidation(inst, push, [_input(liq) for liq in batch]),
                )
                for push, batch in _batches(liqs, BYBIT_LIQ_BATCH_MS)
            ]
        return [
            VenueFrame(liq.ts, "liquidation-orders", f.okx_liquidation(inst, _input(liq)))
            for liq in liqs
        ]

    # --- prices and open interest -----------------------------------------------------------

    def _market_frames(self, tapes: list[AssetTape]) -> list[VenueFrame]:
        if self.spec.venue is Venue.BINANCE:
            return self._binance_market(tapes)
        if self.spec.venue is Venue.BYBIT:
            return [fr for tape in tapes for fr in self._bybit_tickers(tape)]
        return [fr for tape in tapes for fr in self._okx_market(tape)]

    def _binance_market(self, tapes: list[AssetTape]) -> list[VenueFrame]:
        out: list[VenueFrame] = []
        for second, ts in enumerate(tapes[0].sample_ts):
            marks = [
                f.binance_mark_price(
                    self._inst(t.asset),
                    ts,
                    t.price[second],
                    t.price[second] * INDEX_DISCOUNT,
                    self.s.asset(t.asset).funding_rate,
                )
                for t in tapes
            ]
            out.append(VenueFrame(ts, "!markPrice@arr@1s", marks))
            if (ts - self.s.start_ms) % BINANCE_OI_POLL_MS == 0:
                out += [
                    VenueFrame(
                        ts,
                        "/fapi/v1/openInterest",
                        f.binance_open_interest(self._inst(t.asset), ts, self._oi(t, second)),
                    )
                    for t in tapes
                ]
        return out

    def _bybit_tickers(self, tape: AssetTape) -> Iterator[VenueFrame]:
        inst = self._inst(tape.asset)
        funding = self.s.asset(tape.asset).funding_rate
        previous: dict[str, str] | None = None
        cs = 20_000_000_000 + 1_000_000 * self.s.seed % 1_000_000_000
        for second, ts in enumerate(tape.sample_ts):
            if is_silent(self.spec.venue, ts, self.gaps):
                previous = None  # reconnecting after the outage starts with a snapshot
                continue
            price = tape.price[second]
            fields = f.bybit_ticker_fields(
                inst,
                ts,
                mark=price,
                index=price * INDEX_DISCOUNT,
                oi_base=self._oi(tape, second),
                funding=funding,
            )
            cs += 1
            yield VenueFrame(
                ts, f"tickers.{inst.symbol}", f.bybit_ticker(inst, ts, cs, fields, previous)
            )
            previous = fields

    def _okx_market(self, tape: AssetTape) -> Iterator[VenueFrame]:
        inst = self._inst(tape.asset)
        for second, ts in enumerate(tape.sample_ts):
            yield VenueFrame(ts, "mark-price", f.okx_mark_price(inst, ts, tape.price[second]))
            if (ts - self.s.start_ms) % OKX_OI_MS == 0:
                yield VenueFrame(
                    ts, "open-interest", f.okx_open_interest(inst, ts, self._oi(tape, second))
                )


def _input(liq: ForcedLiquidation) -> f.LiqFrameInput:
    return f.LiqFrameInput(
        ts=liq.ts, side=liq.side, qty=liq.qty, bankruptcy=liq.bankruptcy, fill_price=liq.fill_price
    )


def _batches(
    liqs: list[ForcedLiquidation], window_ms: int
) -> list[tuple[int, list[ForcedLiquidation]]]:
    """Liquidations grouped by aligned window; each batch is pushed at its window's end."""
    batches: list[tuple[int, list[ForcedLiquidation]]] = []
    for liq in liqs:
        push = (liq.ts // window_ms + 1) * window_ms  # == push_time() for the venue
        if batches and batches[-1][0] == push:
            batches[-1][1].append(liq)
        else:
            batches.append((push, [liq]))
    return batches
