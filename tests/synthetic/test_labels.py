"""Each scenario's ground truth says what the scenario promises, and agrees with its recording."""

from __future__ import annotations

from liqwatch.schema import Label, LabelKind, RecordedFrame, Side
from producers.synthetic import load_scenario, scenario_names
from producers.synthetic.market import simulate
from tests.synthetic.conftest import Generated
from tests.synthetic.venue_time import liquidations_in, venue_ts

CASCADE, SWEEP, SHIFT, APPROACH, WHALE = (
    LabelKind.CASCADE,
    LabelKind.SWEEP,
    LabelKind.CLUSTER_SHIFT,
    LabelKind.APPROACH,
    LabelKind.WHALE,
)


def of(generated: Generated, kind: LabelKind) -> list[Label]:
    return [lab for lab in generated.truth.labels if lab.kind == kind]


def note_value(label: Label, key: str) -> str:
    return label.note.split(f"{key}=")[1].split()[0]


def marks(frames: list[RecordedFrame], symbol: str = "BTCUSDT") -> list[tuple[int, float]]:
    """(venue time, mark price) from Binance mark-price arrays."""
    return [
        (m["E"], float(m["p"]))
        for rec in frames
        if rec.channel == "!markPrice@arr@1s"
        for m in rec.frame
        if m["s"] == symbol
    ]


def price_at(series: list[tuple[int, float]], ts: int) -> float:
    return [p for t, p in series if t <= ts][-1]


def test_every_label_is_well_formed(library: dict[str, Generated]) -> None:
    for name, generated in library.items():
        truth = generated.truth
        assert truth.scenario == name
        keys = [(lab.start_ms, lab.end_ms) for lab in truth.labels]
        assert keys == sorted(keys)
        for lab in truth.labels:
            assert truth.start_ms <= lab.start_ms <= lab.end_ms <= truth.end_ms, lab
            assert lab.side is not None
            assert lab.band_lo is not None and lab.band_hi is not None
            assert 0 < lab.band_lo <= lab.band_hi, lab
            assert lab.note.split()[0] in {
                "cascade",
                "whale",
                "formed",
                "dissolved",
                "swept",
                "invalidated",
                "expired",
            }


def test_demo_has_a_long_cascade_and_a_short_squeeze_across_venues(
    library: dict[str, Generated],
) -> None:
    demo = library["demo"]
    scenario = load_scenario("demo")
    assert 20 <= scenario.duration_min <= 30
    cascades = {(lab.asset, lab.side): lab for lab in of(demo, CASCADE)}
    assert set(cascades) == {("BTC", Side.LONG), ("ETH", Side.SHORT)}
    for lab in cascades.values():
        assert {"binance", "bybit"} <= set(lab.venues)


def test_long_cascade_is_long_and_pushes_price_down(library: dict[str, Generated]) -> None:
    generated = library["long_cascade"]
    cascades = of(generated, CASCADE)
    assert len(cascades) >= 1 and all(lab.side is Side.LONG for lab in cascades)
    series = marks(generated.frames)
    for lab in cascades:
        assert price_at(series, lab.end_ms + 1000) < price_at(series, lab.start_ms)
        assert float(note_value(lab, "notional_usd")) >= 3_000_000
        assert int(note_value(lab, "events")) >= 8


def test_short_squeeze_is_short_and_pushes_price_up(library: dict[str, Generated]) -> None:
    generated = library["short_squeeze"]
    cascades = of(generated, CASCADE)
    assert len(cascades) >= 1 and all(lab.side is Side.SHORT for lab in cascades)
    series = marks(generated.frames, "ETHUSDT")
    for lab in cascades:
        assert price_at(series, lab.end_ms + 1000) > price_at(series, lab.start_ms)


def test_every_cascade_moves_price_in_the_forcing_direction(
    library: dict[str, Generated],
) -> None:
    checked = 0
    for generated in library.values():
        for lab in of(generated, CASCADE):
            series = marks(generated.frames, f"{lab.asset}USDT")
            before = price_at(series, lab.start_ms)
            after = price_at(series, lab.end_ms + 1000)
            assert (after < before) if lab.side is Side.LONG else (after > before), lab
            checked += 1
    assert checked >= 8


def test_cascade_liquidations_are_in_the_recording(library: dict[str, Generated]) -> None:
    for name in ("long_cascade", "two_venue_cascade", "demo"):
        generated = library[name]
        for lab in of(generated, CASCADE):
            seen = {
                (liq.venue, liq.side)
                for rec in generated.frames
                for liq in liquidations_in(rec)
                if lab.start_ms <= liq.ts <= lab.end_ms
            }
            assert {venue for venue, side in seen if side is lab.side} == set(lab.venues)


def test_two_venue_cascade_names_both_venues(library: dict[str, Generated]) -> None:
    cascades = of(library["two_venue_cascade"], CASCADE)
    assert cascades and all(lab.venues == ["binance", "bybit"] for lab in cascades)


def test_whale_is_a_whale_not_a_cascade(library: dict[str, Generated]) -> None:
    generated = library["whale_liquidation"]
    assert of(generated, CASCADE) == []
    (whale,) = of(generated, WHALE)
    assert whale.side is Side.LONG and whale.venues == ["bybit"]
    assert float(note_value(whale, "notional_usd")) > 3_500_000
    bybit = [
        liq for rec in generated.frames for liq in liquidations_in(rec) if liq.ts == whale.start_ms
    ]
    assert len(bybit) == 1 and bybit[0].qty * whale.band_lo > 3_500_000  # type: ignore[operator]


def test_slow_grind_liquidates_steadily_without_a_cascade(library: dict[str, Generated]) -> None:
    generated = library["slow_grind"]
    assert generated.truth.labels == []
    longs = [
        liq for rec in generated.frames for liq in liquidations_in(rec) if liq.side is Side.LONG
    ]
    assert len(longs) > 20  # the grind does liquidate: only never densely
    series = marks(generated.frames)
    assert series[-1][1] < 0.985 * series[0][1]


def test_cluster_swept_forms_then_is_swept(library: dict[str, Generated]) -> None:
    generated = library["cluster_swept"]
    sweeps = of(generated, SWEEP)
    assert sweeps
    sweep = sweeps[0]
    formed = [
        lab
        for lab in of(generated, SHIFT)
        if lab.note.startswith("formed")
        and sweep.band_lo <= lab.band_hi  # type: ignore[operator]
        and lab.band_lo <= sweep.band_hi  # type: ignore[operator]
    ]
    assert len(formed) == 1  # the band swept is one that formed (the crowd's 50x tier)
    assert sweep.side is Side.LONG and formed[0].start_ms < sweep.start_ms
    series = marks(generated.frames)
    assert price_at(series, sweep.start_ms - 60_000) > sweep.band_hi  # type: ignore[operator]
    assert price_at(series, sweep.end_ms) < sweep.band_lo  # type: ignore[operator]


def test_approach_is_invalidated_without_a_sweep(library: dict[str, Generated]) -> None:
    generated = library["cluster_approach_invalidated"]
    assert of(generated, SWEEP) == [] and of(generated, CASCADE) == []
    approaches = of(generated, APPROACH)
    assert [lab.note for lab in approaches] == ["invalidated"]
    approach = approaches[0]
    series = marks(generated.frames)
    near = price_at(series, approach.start_ms)
    far = price_at(series, approach.end_ms)
    assert (near - approach.band_hi) / near <= 0.005  # type: ignore[operator]
    assert (far - approach.band_hi) / far >= 0.015  # type: ignore[operator]


def test_cluster_forms_then_dissolves_unswept(library: dict[str, Generated]) -> None:
    generated = library["cluster_forms_dissolves"]
    shifts = of(generated, SHIFT)
    formed = [lab for lab in shifts if lab.note.startswith("formed")]
    dissolved = [lab for lab in shifts if lab.note.startswith("dissolved")]
    assert formed and len(dissolved) == len(formed) == len(shifts) // 2  # one per tier band
    assert all(lab.side is Side.SHORT for lab in shifts)
    assert of(generated, SWEEP) == []
    unwind_ms = generated.truth.start_ms + 14 * 60_000
    assert all(lab.start_ms >= unwind_ms for lab in dissolved)  # by the voluntary closes
    for band in formed:  # every band that formed dissolves where it formed
        assert any(d.band_lo <= band.band_hi and band.band_lo <= d.band_hi for d in dissolved)  # type: ignore[operator]


def test_stale_venue_is_silent_and_named(library: dict[str, Generated]) -> None:
    generated = library["stale_venue_cascade"]
    (cascade,) = [lab for lab in of(generated, CASCADE) if "stale_venue=" in lab.note]
    assert note_value(cascade, "stale_venue") == "bybit"
    silent_from = int(note_value(cascade, "stale_from"))
    silent_to = int(note_value(cascade, "stale_to"))
    assert silent_from <= cascade.start_ms and cascade.end_ms < silent_to
    assert "bybit" not in cascade.venues and "binance" in cascade.venues
    bybit = [rec for rec in generated.frames if rec.venue == "bybit"]
    assert not [rec for rec in bybit if silent_from <= venue_ts(rec) < silent_to]
    after = [rec for rec in bybit if venue_ts(rec) >= silent_to and rec.channel.startswith("tick")]
    assert after[0].frame["type"] == "snapshot"
    assert any(venue_ts(rec) < silent_from for rec in bybit)


def test_binance_only_has_only_binance(library: dict[str, Generated]) -> None:
    generated = library["binance_only_sampled"]
    assert {rec.venue for rec in generated.frames} == {"binance"}
    cascades = of(generated, CASCADE)
    assert cascades and all(lab.venues == ["binance"] for lab in cascades)


def test_quiet_market_has_no_labels(library: dict[str, Generated]) -> None:
    generated = library["quiet_market"]
    assert generated.truth.labels == []
    assert len(generated.frames) > 1000


def test_no_unplanned_events(library: dict[str, Generated]) -> None:
    """Scenarios without a crowd have no bands; scenarios without a whale have no whale."""
    for name in scenario_names():
        scenario = load_scenario(name)
        kinds = {lab.kind for lab in library[name].truth.labels}
        if not scenario.crowds:
            assert not kinds & {SWEEP, SHIFT, APPROACH}, name
        if not scenario.whales:
            assert WHALE not in kinds, name
        if not scenario.pushes:
            assert CASCADE not in kinds, name


def test_cascade_starts_at_the_burst_not_the_trickle(library: dict[str, Generated]) -> None:
    """start_ms: first liquidation of the first second carrying ≥ 10 % of the busiest second."""
    trickles = 0
    for name in ("long_cascade", "short_squeeze", "demo"):
        forced = [liq for tape in simulate(load_scenario(name)) for liq in tape.liquidations]
        for lab in of(library[name], CASCADE):
            chain_start = int(note_value(lab, "chain_start_ms"))
            assert chain_start <= lab.start_ms <= lab.end_ms
            trickles += chain_start < lab.start_ms
            per_second: dict[int, float] = {}
            for liq in forced:
                mine = liq.asset == lab.asset and liq.side is lab.side
                if mine and chain_start <= liq.ts <= lab.end_ms:
                    sec = liq.ts // 1000
                    per_second[sec] = per_second.get(sec, 0.0) + liq.notional_usd
            busiest = max(per_second.values())
            before = [usd for sec, usd in per_second.items() if sec < lab.start_ms // 1000]
            assert per_second[lab.start_ms // 1000] >= 0.1 * busiest
            assert all(usd < 0.1 * busiest for usd in before)
            assert bool(before) == (chain_start < lab.start_ms)
            assert any(liq.ts == lab.start_ms for liq in forced)
    assert trickles >= 3  # most chains begin with a trickle the label skips
