"""Liquidations a sampled feed did not show, implied by the fall in open interest.

Binance pushes at most one liquidation per symbol per second, so in a cascade its feed shows a
small fraction of the notional. Forced closes still reduce open interest. Between two OI
observations of an instrument on a sampled venue, if the feed showed liquidations of one side
in at least ``implied_min_seconds`` distinct seconds (the sampler was busy), the part of the OI
fall not accounted for by the liquidations shown is added to the cascade window as implied
notional of that side, at the OI observation's time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from processors.engine.common import FloatArray, IntArray
from processors.engine.state import ForcedTally


def tally_run(
    tallies: list[ForcedTally],
    codes: IntArray | list[int],
    ts: IntArray,
    side: IntArray,
    usd: FloatArray,
) -> None:
    """Adds a time-sorted run of liquidations; ``codes[i]`` indexes ``tallies``."""
    # per (instrument, side) group: [distinct seconds, first second, last second, USD]
    groups: dict[int, list[Any]] = {}
    codes = codes.tolist() if isinstance(codes, np.ndarray) else codes
    rows = zip(codes, side.tolist(), (ts // 1000).tolist(), usd.tolist(), strict=True)
    for code, k, sec, x in rows:
        g = code * 2 + k
        seen = groups.get(g)
        if seen is None:
            groups[g] = [1, sec, sec, 0.0 + x]  # in row order from 0.0, as np.bincount sums
        else:
            seen[3] += x
            if sec != seen[2]:  # rows are time-sorted: a new second
                seen[0] += 1
                seen[2] = sec
    for g in sorted(groups):
        distinct, first, last, total = groups[g]
        t, k = tallies[g // 2], g % 2
        if first == t.last_second[k]:
            distinct -= 1  # that second was already counted in an earlier run
        t.seconds[k] += distinct
        t.last_second[k] = last
        t.usd[k] += total


def implied(t: ForcedTally, raw_delta_usd: float, min_seconds: int) -> tuple[int, float] | None:
    """(side, USD) the OI fall implies beyond the liquidations shown, if the sampler was busy."""
    k = 0 if t.seconds[0] >= t.seconds[1] else 1
    if t.seconds[k] < min_seconds:
        return None
    hidden = -raw_delta_usd - t.total_usd
    return (k, hidden) if hidden > 0 else None
