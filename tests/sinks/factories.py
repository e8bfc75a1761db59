"""Realistic records for sink tests, built with the schema structs (deterministic per seed)."""

from __future__ import annotations

import random
from collections.abc import Iterator

from liqwatch.schema import (
    Alert,
    AlertKind,
    AlertStatus,
    AlertUpdate,
    CascadePhase,
    CascadeSignal,
    ClusterSnapshot,
    Completeness,
    DeadLetter,
    Delivery,
    DeliveryStatus,
    Envelope,
    EventKind,
    HeatmapSnapshot,
    Intensity,
    Layer,
    Liquidation,
    MarkPrice,
    OpenInterest,
    Outcome,
    Severity,
    Side,
    SweepSignal,
    Venue,
    VenueCoverage,
)

T0 = 1_760_130_000_000  # 2025-10-10 21:00:00 UTC
MINUTE = 60_000

COMPLETENESS = {
    Venue.BINANCE: Completeness.SAMPLED,
    Venue.BINANCE_COINM: Completeness.SAMPLED,
    Venue.BYBIT: Completeness.COMPLETE,
    Venue.OKX: Completeness.PARTIAL,
    Venue.DERIBIT: Completeness.COMPLETE,
    Venue.BITMEX: Completeness.COMPLETE,
}


def liquidation(
    i: int,
    *,
    venue: Venue = Venue.BINANCE,
    asset: str = "BTC",
    side: Side = Side.LONG,
    price: float = 112_350.1,
    notional_usd: float = 83_139.07,
    ts: int = T0,
) -> Liquidation:
    return Liquidation(
        venue=venue,
        symbol=f"{asset}USDT",
        instrument=f"{asset}-USDT-PERP",
        asset=asset,
        side=side,
        price=price,
        avg_price=price * 1.0004 if i % 2 else None,
        qty=notional_usd / price,
        notional_usd=notional_usd,
        completeness=COMPLETENESS[venue],
        ts_event=ts,
        ts_recv=ts + 7,
        event_id=f"{venue.value}:{asset}:{i}",
    )


def random_liquidations(
    n: int, seed: int = 1, start: int = T0, asset: str = "BTC"
) -> list[Liquidation]:
    rng = random.Random(seed)
    venues = list(Venue)
    out = []
    for i in range(n):
        price = 112_000 * (1 + rng.uniform(-0.02, 0.02))
        out.append(
            liquidation(
                i,
                venue=rng.choice(venues),
                asset=asset,
                side=rng.choice((Side.LONG, Side.SHORT)),
                price=round(price, 1),
                notional_usd=round(rng.lognormvariate(9, 1.5), 2),
                ts=start + i * 37,
            )
        )
    return out


def open_interest(i: int, *, venue: Venue = Venue.BYBIT, ts: int = T0) -> OpenInterest:
    return OpenInterest(
        venue=venue,
        symbol="BTCUSDT",
        instrument="BTC-USDT-PERP",
        asset="BTC",
        oi_base=81_234.5 + i,
        oi_usd=(81_234.5 + i) * 112_000,
        ts_event=ts,
        ts_recv=ts + 11,
        event_id=f"{venue.value}:oi:{i}",
    )


def mark_price(
    i: int, *, venue: Venue = Venue.BINANCE, ts: int = T0, price: float = 112_380.5
) -> MarkPrice:
    return MarkPrice(
        venue=venue,
        symbol="BTCUSDT",
        instrument="BTC-USDT-PERP",
        asset="BTC",
        mark_price=price,
        index_price=price - 9.28 if i % 2 == 0 else None,
        funding_rate=0.0001 if i % 3 else None,
        next_funding_time=1_760_140_800_000 if i % 3 else None,
        ts_event=ts,
        ts_recv=ts + 3,
        event_id=f"{venue.value}:mark:{i}",
    )


def envelopes(
    events: list[Liquidation], size: int = 200, producer: str = "test"
) -> Iterator[Envelope]:
    for seq, start in enumerate(range(0, len(events), size)):
        chunk = events[start : start + size]
        yield Envelope(
            kind=EventKind.LIQUIDATION,
            asset=chunk[0].asset,
            producer=producer,
            seq=seq,
            ts_flush=chunk[-1].ts_recv,
            events=list(chunk),
        )


def cluster(ts: int = T0) -> ClusterSnapshot:
    return ClusterSnapshot(
        asset="BTC",
        ts=ts,
        model="liqwatch-heatmap/1.0",
        layer=Layer.ESTIMATED,
        side=Side.LONG,
        band_lo=110_500.0,
        band_hi=110_900.0,
        notional_usd=41_000_000.0,
        zscore=3.4,
        intensity=Intensity.BRIGHT,
        mark_price=112_380.5,
    )


def sweep(ts: int = T0 + 5 * MINUTE) -> SweepSignal:
    return SweepSignal(
        asset="BTC",
        ts=ts,
        model="liqwatch-heatmap/1.0",
        side=Side.LONG,
        band_lo=110_500.0,
        band_hi=110_900.0,
        estimated_notional_usd=41_000_000.0,
        realized_notional_usd=12_500_000.0,
        confirmed=True,
        price_before=111_020.0,
        price_after=110_420.0,
    )


def cascade_phases(
    cascade_id: str = "cascade:BTC:long:1760130000000", start: int = T0, total: float = 58e6
) -> list[CascadeSignal]:
    """started -> escalated -> ended for one cascade, with growing totals."""
    phases = [
        (CascadePhase.STARTED, 30_000, total * 0.2, 140, 110_900.0, 4.1e5),
        (CascadePhase.ESCALATED, 90_000, total * 0.7, 610, 110_300.0, 9.5e5),
        (CascadePhase.ENDED, 240_000, total, 1_020, 109_800.0, 9.5e5),
    ]
    return [
        CascadeSignal(
            asset="BTC",
            ts=start + offset,
            model="liqwatch-cascade/1.0",
            cascade_id=cascade_id,
            phase=phase,
            side=Side.LONG,
            started_at=start,
            window_notional_usd=notional / 3,
            total_notional_usd=notional,
            events=events,
            venues=["binance", "bybit", "okx"],
            price_start=111_500.0,
            price_now=price,
            peak_rate_usd_s=peak,
            duration_ms=offset,
        )
        for phase, offset, notional, events, price, peak in phases
    ]


def heatmap(ts: int = T0, origin: float = 100_000.0) -> HeatmapSnapshot:
    return HeatmapSnapshot(
        asset="BTC",
        ts=ts,
        model="liqwatch-heatmap/1.0",
        grid_origin=origin,
        bucket_bp=10.0,
        mark_price=112_380.5,
        realized_long=[(100, 250_000.0), (101, 125_000.0)],
        realized_short=[(130, 90_000.0)],
        estimated_long=[(95, 4_000_000.0), (100, 9_000_000.0), (101, 6_500_000.0)],
        estimated_short=[(125, 3_000_000.0), (131, 7_000_000.0)],
    )


def alert(
    alert_id: str = "cascade:BTC:long:1760130000000",
    *,
    kind: AlertKind = AlertKind.CASCADE,
    status: AlertStatus = AlertStatus.OPEN,
    outcome: Outcome | None = None,
    side: Side | None = Side.LONG,
    ts: int = T0,
) -> Alert:
    return Alert(
        alert_id=alert_id,
        kind=kind,
        subkind="started",
        asset="BTC",
        instruments=["BTC-USDT-PERP", "BTC-USD-INVERSE"],
        venues=[
            VenueCoverage(
                venue="binance", completeness=Completeness.SAMPLED, stale=False, staleness_s=0.4
            ),
            VenueCoverage(
                venue="okx", completeness=Completeness.PARTIAL, stale=True, staleness_s=95.0
            ),
        ],
        side=side,
        timeframe="1m",
        severity=Severity.CRITICAL,
        intensity=Intensity.BRIGHT if side is not None else None,
        band_lo=110_500.0 if side is not None else None,
        band_hi=110_900.0 if side is not None else None,
        notional_usd=11_600_000.0,
        oi_usd=7.9e9,
        oi_delta_1h_usd=-1.2e8,
        funding_rate=0.0001,
        price_at_alert=111_020.0,
        invalidation=112_100.0,
        created_at=ts + 1_500,
        ts_event=ts,
        title="BTC long cascade started",
        summary="$11.6M of longs liquidated in 30 s on 3 venues",
        model="liqwatch-cascade/1.0",
        status=status,
        outcome=outcome,
        details={"zscore": 4.2, "share_long": 0.93},
    )


def alert_update(alert_id: str, seq: int, ts: int = T0 + MINUTE) -> AlertUpdate:
    return AlertUpdate(
        alert_id=alert_id,
        seq=seq,
        ts=ts,
        status=AlertStatus.OPEN if seq == 1 else AlertStatus.ENDED,
        subkind="escalated" if seq == 1 else "ended",
        note=f"update {seq}",
        price=110_300.0,
        details={"total_notional_usd": 4.1e7},
    )


def outcome(hit: bool = True, horizon_min: int = 60) -> Outcome:
    return Outcome(
        horizon_min=horizon_min,
        price_after=109_900.0 if hit else 112_900.0,
        max_favourable_pct=1.7 if hit else 0.2,
        max_adverse_pct=0.3 if hit else 1.9,
        hit=hit,
    )


def delivery(
    alert_id: str, status: DeliveryStatus = DeliveryStatus.SENT, ts: int = T0 + 2_000
) -> Delivery:
    return Delivery(
        alert_id=alert_id,
        update_seq=0,
        route="critical-btc",
        target="tgram://api.telegram.org",
        status=status,
        attempts=1 if status is DeliveryStatus.SENT else 3,
        error="" if status is DeliveryStatus.SENT else "HTTP 502",
        ts=ts,
    )


def dead_letter(i: int = 0, ts: int = T0) -> DeadLetter:
    return DeadLetter(
        source="producer/parse",
        venue="okx",
        channel="liquidation-orders",
        reason="missing field 'posSide'",
        raw='{"arg":{"channel":"liquidation-orders"},"data":[{"instId":"BTC-USDT-SWAP"}]}' + str(i),
        ts_recv=ts,
    )
