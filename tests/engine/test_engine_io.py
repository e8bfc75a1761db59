"""Inputs, outputs and the API around the detectors: dead letters, metrics, coverage,
snapshots of the heatmap, pressure, key levels, the alert record standard."""

from __future__ import annotations

import dataclasses
import math

import msgspec
import pytest
from prometheus_client import CollectorRegistry, Gauge

from liqwatch.schema import (
    Alert,
    AlertKind,
    ClusterSnapshot,
    HeatmapSnapshot,
    Layer,
    Severity,
    Side,
    Venue,
)
from processors.engine import MODEL, Engine, EngineConfig, EngineMetrics
from processors.engine.alerts import AlertContext, Claim, build_alert
from tests.engine.events import T0, Driver, config, liq, mark, oi, quiet_marks
from tests.engine.market import random_envelopes

P = 100_000.0


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_bad_events_are_dead_lettered_and_counted_not_crashing() -> None:
    registry = CollectorRegistry()
    engine = Engine(EngineConfig.default(), EngineMetrics(registry))
    good = mark(T0, P)
    bad = [
        msgspec.structs.replace(mark(T0 + 1, P), mark_price=float("nan")),
        msgspec.structs.replace(mark(T0 + 2, P), mark_price=-5.0),
    ]
    out = engine.process([good, *bad])
    assert out == []
    dead = engine.drain_dead_letters()
    assert [d.reason for d in dead] == ["bad mark price", "bad mark price"]
    assert dead[0].channel == "mark_price" and dead[0].venue == "bybit"
    assert '"mark_price":NaN' in dead[0].raw or "NaN" in dead[0].raw or "null" in dead[0].raw
    assert engine.drain_dead_letters() == []
    assert metric(registry, "liqwatch_engine_dropped_events_total", kind="MarkPrice") == 2
    assert metric(registry, "liqwatch_engine_events_total", kind="MarkPrice") == 1
    bad_liq = msgspec.structs.replace(liq(T0 + 3, Side.LONG, P, 1e5), notional_usd=math.inf)
    engine.process([bad_liq, liq(T0 + 4, Side.LONG, P, 1e5)])
    assert [d.reason for d in engine.drain_dead_letters()] == ["bad price"]
    bad_oi = msgspec.structs.replace(oi(T0 + 5, 10, P), oi_base=-1.0)
    engine.process([bad_oi])
    assert [d.channel for d in engine.drain_dead_letters()] == ["open_interest"]


def test_outputs_are_counted_by_type() -> None:
    registry = CollectorRegistry()
    engine = Engine(EngineConfig.default(), EngineMetrics(registry))
    out = []
    for events in random_envelopes(seed=3):
        out += engine.process(events)
    heatmaps = sum(isinstance(o, HeatmapSnapshot) for o in out)
    assert heatmaps > 0
    assert metric(registry, "liqwatch_engine_outputs_total", type="HeatmapSnapshot") == heatmaps
    assert metric(registry, "liqwatch_engine_assets") == 1


def test_silent_venue_is_marked_stale_in_alert_coverage() -> None:
    registry = CollectorRegistry()
    d = Driver(Engine(EngineConfig.default(), EngineMetrics(registry)))
    d.feed([*quiet_marks(T0, T0 + 60_000, P), *quiet_marks(T0, T0 + 20_000, P, venue=Venue.OKX)])
    coverage = {c.venue: c for c in d.engine.coverage("BTC", T0 + 60_000)}
    assert not coverage["bybit"].stale
    assert coverage["okx"].stale
    assert coverage["okx"].staleness_s == pytest.approx(41, abs=1)
    assert metric(registry, "liqwatch_engine_venue_stale", asset="BTC", venue="okx") == 1
    c0 = T0 + 60_000
    falling = [mark(c0 + i * 100, P * (1 - 0.01 * i / 100)) for i in range(100)]
    burst = [liq(c0 + i * 100 + 5, Side.LONG, P, 100_000) for i in range(100)]
    d.feed([*falling, *burst])
    (alert,) = d.alerts("cascade")
    okx = next(v for v in alert.venues if v.venue == "okx")
    assert okx.stale
    assert "Stale: okx" in alert.summary
    d.feed(quiet_marks(c0 + 10_000, c0 + 12_000, P, venue=Venue.OKX))
    d.feed(quiet_marks(c0 + 12_000, c0 + 14_000, P))
    assert metric(registry, "liqwatch_engine_venue_stale", asset="BTC", venue="okx") == 0


def test_heatmap_snapshot_holds_exact_window_totals_and_levels() -> None:
    d = Driver(config(model={"split": "even"}))
    d.feed([*quiet_marks(T0 - T0 % 60_000, T0 - T0 % 60_000 + 5_000, P)])
    w0 = T0 - T0 % 60_000 + 60_000  # a whole window
    d.feed([
        *quiet_marks(w0, w0 + 121_000, P),
        oi(w0 + 1_000, 1000, P), oi(w0 + 2_000, 1100, P),
        liq(w0 + 3_000, Side.LONG, P * 0.998, 250_000),
        liq(w0 + 4_000, Side.LONG, P * 0.998, 50_000),
        liq(w0 + 61_000, Side.SHORT, P * 1.001, 70_000),
    ])  # fmt: skip
    snaps = [s for s in d.of(HeatmapSnapshot) if s.ts in (w0 + 60_000, w0 + 120_000)]
    first, second = snaps
    assert first.model == MODEL
    assert sum(v for _, v in first.realized_long) == pytest.approx(300_000)
    assert first.realized_short == []
    assert sum(v for _, v in second.realized_short) == pytest.approx(70_000)
    (i, _), *_ = first.realized_long
    bucket_px = first.grid_origin * (1 + first.bucket_bp / 10_000) ** i
    assert bucket_px <= P * 0.998 < bucket_px * 1.001
    estimated = sum(v for _, v in first.estimated_long) + sum(v for _, v in first.estimated_short)
    assert estimated == pytest.approx(100 * P, rel=1e-3)  # every tier is within ±25 %
    assert any(c.layer is Layer.ESTIMATED for c in d.of(ClusterSnapshot))


def test_pressure_alerts_on_the_transition_not_while_extreme() -> None:
    d = Driver(config(pressure={"min_samples": 4, "min_std_usd": 10_000.0}))
    d.feed(quiet_marks(T0, T0 + 120_000, P))
    trickle = [
        liq(T0 + s * 1000, Side.LONG if s % 2 else Side.SHORT, P, 20_000) for s in range(120)
    ]
    d.feed(trickle)
    t1 = T0 + 120_000
    d.feed([*quiet_marks(t1, t1 + 180_000, P),
            *[liq(t1 + s * 500, Side.SHORT, P, 200_000) for s in range(360)]])  # fmt: skip
    pressure = d.alerts("pressure")
    one_minute = [a for a in pressure if a.timeframe == "1m"]
    assert len(one_minute) == 1  # extreme for minutes, alerted once
    alert = one_minute[0]
    assert alert.side is Side.SHORT and alert.subkind == "upward"
    assert alert.invalidation < alert.price_at_alert
    assert 0 < alert.details["agreement"] <= 1


def test_key_level_alerts_when_liquidations_spike_around_it() -> None:
    cfg = EngineConfig.default().with_key_levels({"BTC": [99_000.0]})
    d = Driver(cfg)
    d.feed(quiet_marks(T0, T0 + 30_000, P))
    spike = [liq(T0 + 30_000 + i * 100, Side.LONG, 99_050.0, 100_000) for i in range(10)]
    d.feed([*spike, *quiet_marks(T0 + 30_000, T0 + 40_000, 99_100.0)])
    (alert,) = d.alerts("key_level")
    assert alert.kind is AlertKind.KEY_LEVEL
    assert alert.band_lo is not None and alert.band_lo < 99_000 < (alert.band_hi or 0)
    assert alert.details["level"] == 99_000.0
    away = [liq(T0 + 45_000 + i * 100, Side.LONG, 99_050.0, 100_000) for i in range(10)]
    d.feed([*away, *quiet_marks(T0 + 40_000, T0 + 50_000, 99_100.0)])
    assert len(d.alerts("key_level")) == 1  # still hot: not re-armed yet


def test_every_alert_meets_the_record_standard() -> None:
    out = []
    engine = Engine(EngineConfig.default())
    for events in random_envelopes(seed=3):
        out += engine.process(events)
    alerts = [o for o in out if isinstance(o, Alert)]
    assert {a.kind for a in alerts} >= {AlertKind.CASCADE}
    for a in alerts:
        assert a.model == MODEL
        assert math.isfinite(a.invalidation) and a.invalidation > 0
        assert a.price_at_alert > 0 and a.title and a.summary and a.timeframe
        assert a.venues and a.instruments and a.oi_usd is not None
        assert a.funding_rate == pytest.approx(1e-4)
        assert a.created_at >= a.ts_event or a.kind in (AlertKind.SWEEP,)
        assert a.alert_id.startswith(a.kind.value)


def test_an_alert_that_cannot_state_its_invalidation_is_not_built() -> None:
    ctx = AlertContext(
        asset="BTC", now=T0, price=P, instruments=["BTC-USDT-PERP"], venues=[],
        oi_usd=None, oi_delta_1h_usd=None, funding=None,
    )  # fmt: skip
    claim = Claim(
        alert_id="x", kind=AlertKind.SWEEP, subkind="confirmed", side=Side.LONG, timeframe="1m",
        severity=Severity.INFO, invalidation=float("nan"), ts_event=T0, title="t", summary="s",
    )  # fmt: skip
    assert build_alert(claim, ctx) is None
    ok = build_alert(dataclasses.replace(claim, invalidation=99_000.0), ctx)
    assert ok is not None and ok.invalidation == 99_000.0


def test_assets_in_one_batch_do_not_affect_each_other() -> None:
    """A runner may hand over batches mixing assets and kinds: each asset's outputs are the
    same as when it is processed alone."""
    envelopes = random_envelopes(seed=4, seconds=120)
    eth = [[msgspec.structs.replace(e, asset="ETH") for e in env] for env in envelopes]
    alone = Engine(EngineConfig.default())
    btc_alone = [o for env in envelopes for o in alone.process(env)]
    mixed = Engine(EngineConfig.default())
    out = [o for a, b in zip(envelopes, eth, strict=True) for o in mixed.process([*a, *b])]
    assert [o for o in out if getattr(o, "asset", "BTC") == "BTC" and not _eth_update(o)] == [
        o for o in btc_alone if not _eth_update(o)
    ]
    assert mixed.assets() == ["BTC", "ETH"]
    assert any(getattr(o, "asset", "") == "ETH" for o in out)


def _eth_update(o: object) -> bool:
    return "-ETH-" in getattr(o, "alert_id", "")


def test_things_that_are_not_market_events_are_dead_lettered() -> None:
    engine = Engine(EngineConfig.default())
    out = engine.process([{"venue": "bybit"}, mark(T0, P), "garbage"])  # type: ignore[list-item]
    assert out == []
    reasons = [d.reason for d in engine.drain_dead_letters()]
    assert reasons == ["not a market event: dict", "not a market event: str"]
    assert engine.assets() == ["BTC"]
    no_asset = msgspec.structs.replace(mark(T0 + 1, P), asset="")
    engine.process([no_asset])
    assert [d.reason for d in engine.drain_dead_letters()] == ["event without an asset"]


def test_a_service_can_take_staleness_under_its_own_name() -> None:
    registry = CollectorRegistry()
    own = Gauge("svc_venue_stale", "stale", ["asset", "venue"], registry=registry)
    d = Driver(Engine(EngineConfig.default(), EngineMetrics(registry, venue_stale=own)))
    d.feed([*quiet_marks(T0, T0 + 60_000, P), *quiet_marks(T0, T0 + 20_000, P, venue=Venue.OKX)])
    assert metric(registry, "svc_venue_stale", asset="BTC", venue="okx") == 1
    names = {m.name for m in registry.collect()}
    assert "liqwatch_engine_venue_stale" not in names  # no second, never-set gauge
