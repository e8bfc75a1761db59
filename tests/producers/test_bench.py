"""The parse benchmark measures what it claims: the baseline builds the same events."""

from __future__ import annotations

import pytest

from liqwatch.schema import Venue
from producers.bench import BASELINES, TS, format_table, make_recording, run_parse_bench
from producers.instruments import InstrumentBook
from producers.parsing import FrameParser


@pytest.mark.parametrize("venue", list(Venue), ids=str)
def test_the_baseline_builds_the_same_liquidations_as_the_parser(venue: Venue) -> None:
    book = InstrumentBook.default()
    parser = FrameParser(book)
    for channel, frame in make_recording(venue, 300):
        ours = parser.parse(venue, channel, frame, TS).events
        assert ours == BASELINES[venue](channel, frame, TS, book)


def test_a_small_run_reports_every_venue() -> None:
    result = run_parse_bench(2_000, repeats=1)
    assert set(result["venues"]) == {v.value for v in Venue}
    for row in result["venues"].values():
        assert row["events"] == row["frames"] == 2_000
        assert row["parser_fps"] > 0 and row["baseline_fps"] > 0
        assert row["speedup"] == pytest.approx(row["parser_fps"] / row["baseline_fps"], rel=0.01)
    assert result["report"] == format_table(result)
    assert "binance" in result["report"] and "stdlib json/s" in result["report"]
