"""Band label options: smoothing the true density, and bands that price brings into reach."""

from __future__ import annotations

from liqwatch.schema import LabelKind, Side
from producers.synthetic import load_scenario
from producers.synthetic.bands import BandTracker
from producers.synthetic.book import LogGrid, Position, PositionBook
from producers.synthetic.scenario import LabelRules

PRICE = 100_000.0


def tracker(rules: LabelRules) -> tuple[BandTracker, PositionBook]:
    spec = load_scenario("long_cascade").assets[0]  # BTC: 2 M USD per bucket, 5 M USD per band
    grid = LogGrid(PRICE, rules.bucket_bp)
    return BandTracker(spec, rules, grid), PositionBook(grid, 1)


def add_long(book: PositionBook, liq_price: float, usd: float) -> None:
    pid = len(book.positions)
    qty = usd / liq_price
    book.open(
        Position(
            pid=pid,
            side=Side.LONG,
            venue=0,
            qty=qty,
            entry=liq_price * 1.035,
            leverage=25,
            liq_price=liq_price,
            bankruptcy=liq_price * 0.995,
            bucket=book.grid.index(liq_price),
            crowd="c",
        )
    )


def formed(t: BandTracker) -> list[tuple[float | None, float | None]]:
    return [
        (lab.band_lo, lab.band_hi)
        for lab in t.labels
        if lab.kind is LabelKind.CLUSTER_SHIFT and lab.note.startswith("formed")
    ]


def straddling_band(book: PositionBook) -> None:
    """One band whose entry prices left a thin bucket in its middle: 3.3/3.3/1.5/3.3/3.3 M USD
    of liquidation prices over five buckets, centred 3 % below 100k."""
    centre = book.grid.index(PRICE * 0.97)
    for k, usd in enumerate((3.3e6, 3.3e6, 1.5e6, 3.3e6, 3.3e6)):
        add_long(book, book.grid.lower(centre - 2 + k) * 1.0002, usd)


def edges(book: PositionBook, first: int, last: int) -> tuple[float, float]:
    centre = book.grid.index(PRICE * 0.97)
    return (round(book.grid.lower(centre + first), 8), round(book.grid.upper(centre + last), 8))


def test_raw_rule_splits_a_band_at_a_thin_bucket() -> None:
    t, book = tracker(LabelRules())
    straddling_band(book)
    t.observe(0, PRICE, book)
    assert formed(t) == [edges(book, -2, -1), edges(book, 1, 2)]


def test_smoothed_rule_makes_the_band_one_label() -> None:
    t, book = tracker(LabelRules(band_smooth_buckets=3))
    straddling_band(book)
    t.observe(0, PRICE, book)
    assert formed(t) == [edges(book, -2, 2)]


def test_band_brought_into_reach_by_price_is_tracked_without_a_formed_label() -> None:
    rules = LabelRules(band_smooth_buckets=3, silent_reach_entry=True)
    t, book = tracker(rules)
    straddling_band(book)  # 3 % below 100k: out of reach (5 %) while price is at 103k
    t.observe(0, 103_000.0, book)
    t.observe(1000, 102_500.0, book)
    assert t.bands == []
    t.observe(2000, 101_000.0, book)  # price fell: the band is in reach now
    assert formed(t) == [] and len(t.bands) == 1
    # it still gets approach/sweep labels, and no dissolved label when it empties
    t.observe(3000, PRICE * 0.97 * 1.004, book)
    t.observe(4000, PRICE * 0.95, book)
    kinds = sorted(lab.kind for lab in t.finish(5000))
    assert kinds == [LabelKind.APPROACH, LabelKind.SWEEP]


def test_band_formed_inside_reach_is_labelled_with_silent_reach_entry() -> None:
    t, book = tracker(LabelRules(band_smooth_buckets=3, silent_reach_entry=True))
    t.observe(0, PRICE, book)
    straddling_band(book)  # the positions open while price sits 3 % above them
    t.observe(1000, PRICE, book)
    assert len(formed(t)) == 1


def test_defaults_keep_the_old_rule() -> None:
    rules = LabelRules()
    assert rules.band_smooth_buckets == 1 and rules.silent_reach_entry is False
