"""Liquidations a sampled feed did not show, implied by the fall in open interest.

Binance pushes at most one liquidation per symbol per second, so in a cascade its feed shows a
small fraction of the notional. Forced closes still reduce open interest. Between two OI
observations of an instrument on a sampled venue, if the feed showed liquidations of one side
in at least ``implied_min_seconds`` distinct seconds (the sampler was busy), the part of the OI
fall not accounted for by the liquidations shown is added to the cascade window as implied
notional of that side, at the OI observation's time.
"""

from __future__ import annotations

import msgspec
import numpy as np

from processors.engine.common import FloatArray, IntArray


class ForcedTally(msgspec.Struct, kw_only=True):
    """Liquidations seen on one instrument since its last open-interest observation."""

    usd: list[float] = msgspec.field(default_factory=lambda: [0.0, 0.0])
    seconds: list[int] = msgspec.field(default_factory=lambda: [0, 0])
    last_second: list[int] = msgspec.field(default_factory=lambda: [-1, -1])

    @property
    def total_usd(self) -> float:
        return self.usd[0] + self.usd[1]


def tally_run(
    tallies: list[ForcedTally], codes: IntArray, ts: IntArray, side: IntArray, usd: FloatArray
) -> None:
    """Adds a time-sorted run of liquidations; ``codes[i]`` indexes ``tallies``."""
    group = codes * 2 + side
    sums = np.bincount(group, weights=usd, minlength=2 * len(tallies))
    seconds = ts // 1000
    # distinct (group, second) pairs, in group then time order
    pairs = np.unique(group * (1 << 40) + seconds)
    g = pairs >> 40
    sec = pairs - (g << 40)
    starts = np.flatnonzero(np.diff(g, prepend=-1))
    ends = np.append(starts[1:], g.size) - 1
    for first, last in zip(starts.tolist(), ends.tolist(), strict=True):
        gi = int(g[first])
        t, k = tallies[gi // 2], gi % 2
        distinct = last - first + 1
        if int(sec[first]) == t.last_second[k]:
            distinct -= 1  # that second was already counted in an earlier run
        t.seconds[k] += distinct
        t.last_second[k] = int(sec[last])
    for gi in np.flatnonzero(sums).tolist():
        tallies[gi // 2].usd[gi % 2] += float(sums[gi])


def implied(t: ForcedTally, raw_delta_usd: float, min_seconds: int) -> tuple[int, float] | None:
    """(side, USD) the OI fall implies beyond the liquidations shown, if the sampler was busy."""
    k = 0 if t.seconds[0] >= t.seconds[1] else 1
    if t.seconds[k] < min_seconds:
        return None
    hidden = -raw_delta_usd - t.total_usd
    return (k, hidden) if hidden > 0 else None
