"""Ground truth from the forced liquidations themselves: cascades and whales.

Definitions (docs/synthetic.md, "Cascade and whale labels"): per asset and side, forced
liquidations are split into chains wherever two in a row are more than ``chain_gap_s`` apart.
A chain is a cascade when its busiest ``window_s`` carries at least ``cascade_min_usd``, it has
at least ``cascade_min_events`` liquidations, and no single liquidation is
``whale_max_share`` or more of its notional. A liquidation of at least ``whale_min_usd`` outside
every cascade is a whale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from liqwatch.schema import Label, LabelKind, Side, Venue
from producers.synthetic.market import ForcedLiquidation
from producers.synthetic.scenario import AssetSpec, LabelRules


@dataclass(frozen=True)
class Silence:
    """A venue outage, in ms: the venue sends nothing in [start_ms, end_ms)."""

    venue: Venue
    start_ms: int
    end_ms: int


def liquidation_labels(
    spec: AssetSpec,
    rules: LabelRules,
    liquidations: Sequence[ForcedLiquidation],
    reported: Sequence[bool],
    silences: Sequence[Silence],
) -> list[Label]:
    """Cascade and whale labels of one asset (``reported[i]``: liquidation i is recorded)."""
    labels: list[Label] = []
    for side in (Side.LONG, Side.SHORT):
        picked = [
            (liq, seen)
            for liq, seen in zip(liquidations, reported, strict=True)
            if liq.side is side
        ]
        for chain in _chains(picked, round(rules.chain_gap_s * 1000)):
            labels += _chain_labels(spec, rules, chain, silences)
    return labels


Entry = tuple[ForcedLiquidation, bool]


def _chains(entries: list[Entry], gap_ms: int) -> list[list[Entry]]:
    chains: list[list[Entry]] = []
    for entry in entries:
        if chains and entry[0].ts - chains[-1][-1][0].ts <= gap_ms:
            chains[-1].append(entry)
        else:
            chains.append([entry])
    return chains


def peak_window_usd(liqs: Sequence[ForcedLiquidation], window_ms: int) -> float:
    """Largest notional inside any window of ``window_ms`` (liquidations sorted by time)."""
    best = total = 0.0
    first = 0
    for liq in liqs:
        total += liq.notional_usd
        while liq.ts - liqs[first].ts >= window_ms:
            total -= liqs[first].notional_usd
            first += 1
        best = max(best, total)
    return best


def _chain_labels(
    spec: AssetSpec, rules: LabelRules, chain: list[Entry], silences: Sequence[Silence]
) -> list[Label]:
    liqs = [liq for liq, _ in chain]
    total = sum(liq.notional_usd for liq in liqs)
    peak = peak_window_usd(liqs, round(rules.window_s * 1000))
    biggest = max(liq.notional_usd for liq in liqs)
    is_cascade = (
        peak >= spec.cascade_min_usd
        and len(liqs) >= rules.cascade_min_events
        and biggest < rules.whale_max_share * total
    )
    if is_cascade:
        onset = burst_onset_ms(liqs, rules.onset_share)
        return [_cascade(chain, onset, total, peak, silences)]
    return [_whale(liq, seen) for liq, seen in chain if liq.notional_usd >= spec.whale_min_usd]


def burst_onset_ms(liqs: Sequence[ForcedLiquidation], onset_share: float) -> int:
    """Time of the chain's first liquidation in its first whole second whose notional reaches
    ``onset_share`` of the chain's busiest second: the burst, not the trickle before it."""
    per_second: dict[int, float] = {}
    for liq in liqs:
        per_second[liq.ts // 1000] = per_second.get(liq.ts // 1000, 0.0) + liq.notional_usd
    busiest = max(per_second.values())
    onset_second = min(s for s, usd in per_second.items() if usd >= onset_share * busiest)
    return min(liq.ts for liq in liqs if liq.ts // 1000 == onset_second)


def _cascade(
    chain: list[Entry], onset: int, total: float, peak: float, silences: Sequence[Silence]
) -> Label:
    first, last = chain[0][0], chain[-1][0]
    fills = [liq.fill_price for liq, _ in chain]
    note = (
        f"cascade events={len(chain)} notional_usd={total:.0f} peak_window_usd={peak:.0f}"
        f" chain_start_ms={first.ts}"
    )
    for s in silences:
        if s.start_ms <= last.ts and first.ts < s.end_ms:
            note += f" stale_venue={s.venue} stale_from={s.start_ms} stale_to={s.end_ms}"
    return Label(
        kind=LabelKind.CASCADE,
        asset=first.asset,
        side=first.side,
        start_ms=onset,
        end_ms=last.ts,
        band_lo=min(fills),
        band_hi=max(fills),
        venues=sorted({str(liq.venue) for liq, seen in chain if seen}),
        note=note,
    )


def _whale(liq: ForcedLiquidation, seen: bool) -> Label:
    return Label(
        kind=LabelKind.WHALE,
        asset=liq.asset,
        side=liq.side,
        start_ms=liq.ts,
        end_ms=liq.ts,
        band_lo=liq.fill_price,
        band_hi=liq.fill_price,
        venues=[str(liq.venue)] if seen else [],
        note=f"whale notional_usd={liq.notional_usd:.0f}",
    )
