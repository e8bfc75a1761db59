"""Every synthetic frame goes through the real venue parsers cleanly, with the true sides."""

from __future__ import annotations

from collections import Counter, defaultdict

import msgspec
import pytest

from liqwatch.schema import Liquidation, MarkPrice, OpenInterest, Venue
from producers.parsing import new_context, parse_frame
from producers.synthetic import load_scenario, scenario_names
from producers.synthetic.market import ForcedLiquidation, simulate
from tests.synthetic.conftest import Generated


class RawLine(msgspec.Struct):
    venue: Venue
    channel: str
    ts_recv: int
    frame: msgspec.Raw


def truth_index(scenario: str) -> dict[tuple[str, int], list[ForcedLiquidation]]:
    index: dict[tuple[str, int], list[ForcedLiquidation]] = defaultdict(list)
    for tape in simulate(load_scenario(scenario)):
        for liq in tape.liquidations:
            index[(str(liq.venue), liq.ts)].append(liq)
    return index


@pytest.mark.parametrize("scenario", scenario_names())
def test_frames_parse_without_dead_letters_and_sides_match_truth(
    library: dict[str, Generated], scenario: str
) -> None:
    decoder = msgspec.json.Decoder(RawLine)
    contexts = {venue: new_context() for venue in Venue}
    truth = truth_index(scenario)
    kinds: Counter[str] = Counter()
    for line in library[scenario].path.read_bytes().splitlines():
        rec = decoder.decode(line)
        result = parse_frame(
            rec.venue, rec.channel, bytes(rec.frame), rec.ts_recv, contexts[rec.venue]
        )
        assert result.dead_letter is None, result.dead_letter
        assert not result.ignored  # the recording holds data frames only
        for event in result.events:
            kinds[type(event).__name__] += 1
            if isinstance(event, Liquidation):
                assert event.ts_recv == rec.ts_recv
                candidates = truth[(str(event.venue), event.ts_event)]
                assert any(
                    liq.side is event.side and abs(liq.qty - event.qty) < 1e-9 for liq in candidates
                ), (event, candidates)
    assert (kinds[Liquidation.__name__] > 0) == bool(truth)
    assert kinds[MarkPrice.__name__] > 0
    assert kinds[OpenInterest.__name__] > 0
