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
    sums: dict[int, float] = {}
    # per (instrument, side) group: [distinct seconds, first second, last second]
    seconds: dict[int, list[int]] = {}
    groups = (codes * 2 + side).tolist()
    for g, sec, x in zip(groups, (ts // 1000).tolist(), usd.tolist(), strict=True):
        sums[g] = sums.get(g, 0.0) + x  # in row order from 0.0, as np.bincount sums
        seen = seconds.get(g)
        if seen is None:
            seconds[g] = [1, sec, sec]
        elif sec != seen[2]:  # rows are time-sorted: a new second
            seen[0] += 1
            seen[2] = sec
    for g in sorted(seconds):
        distinct, first, last = seconds[g]
        t, k = tallies[g // 2], g % 2
        if first == t.last_second[k]:
            distinct -= 1  # that second was already counted in an earlier run
        t.seconds[k] += distinct
        t.last_second[k] = last
        t.usd[k] += sums[g]


def implied(t: ForcedTally, raw_delta_usd: float, min_seconds: int) -> tuple[int, float] | None:
    """(side, USD) the OI fall implies beyond the liquidations shown, if the sampler was busy."""
    k = 0 if t.seconds[0] >= t.seconds[1] else 1
    if t.seconds[k] < min_seconds:
        return None
    hidden = -raw_delta_usd - t.total_usd
    return (k, hidden) if hidden > 0 else None
