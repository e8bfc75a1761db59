"""Market context per asset: reference price, funding, open interest history, venue coverage.

The reference price is the latest mark price from any of the asset's instruments (event time).
A venue is stale when nothing from it arrived for ``max(stale_factor × cadence, min_stale_ms)``;
every alert lists each venue with its completeness and staleness, so stale data is never
presented as fresh.
"""

from __future__ import annotations

from collections.abc import Iterable

from liqwatch.schema import Completeness, MarkPrice, VenueCoverage
from processors.engine.config import StalenessConfig
from processors.engine.state import MarketState, MarkInfo, VenueInfo

DEFAULT_COMPLETENESS = {
    "binance": Completeness.SAMPLED,
    "binance_coinm": Completeness.SAMPLED,
    "okx": Completeness.PARTIAL,
}
OI_SAMPLE_MS = 60_000
OI_HISTORY_MS = 3_600_000


class MarketContext:
    def __init__(self, cfg: StalenessConfig, state: MarketState | None = None) -> None:
        self.cfg = cfg
        self.state = state or MarketState()
        self._stale_after: dict[str, float] = {}

    def seen(self, venue: str, instrument: str, ts: int, completeness: Completeness | None) -> None:
        _touch(self.state, venue, instrument, ts)
        if completeness is not None:
            self.state.venues[venue].completeness = completeness

    def seen_all(self, keys: list[tuple[str, str]], ts: list[int]) -> None:
        """``seen`` (no completeness) for each (venue, instrument) at its time, in order.

        A run calls this for every instrument it holds: one loop instead of a call each."""
        s = self.state
        for (venue, instrument), t in zip(keys, ts, strict=True):
            _touch(s, venue, instrument, t)

    def marks_seen(self, latest: Iterable[MarkPrice]) -> None:
        """``seen`` then ``mark`` for each instrument's latest mark price, in order."""
        for e in latest:
            venue = str(e.venue)
            _touch(self.state, venue, e.instrument, e.ts_event)
            self.mark(venue, e.instrument, e.mark_price, e.funding_rate, e.ts_event)

    def mark(
        self, venue: str, instrument: str, price: float, funding: float | None, ts: int
    ) -> None:
        key = f"{venue}:{instrument}"
        prev = self.state.marks.get(key)
        if prev is None:
            self.state.marks[key] = MarkInfo(venue=venue, price=price, funding=funding, ts=ts)
        elif ts >= prev.ts:  # in place: nothing else holds a MarkInfo
            prev.price, prev.ts = price, ts
            if funding is not None:
                prev.funding = funding

    def set_price(self, price: float, ts: int) -> None:
        """The asset's reference price: the latest mark from any instrument."""
        if ts >= self.state.price_ts:
            self.state.price, self.state.price_ts = price, ts

    def stale_after_ms(self, venue: str) -> float:
        after = self._stale_after.get(venue)
        if after is None:  # once per venue: the config is frozen
            cadence = self.cfg.cadence_ms.get(venue, self.cfg.default_cadence_ms)
            after = self._stale_after[venue] = max(
                self.cfg.stale_factor * cadence, self.cfg.min_stale_ms
            )
        return after

    def coverage(self, now: int) -> list[VenueCoverage]:
        return [
            VenueCoverage(
                venue=venue,
                completeness=info.completeness,
                stale=now - info.last_ts > self.stale_after_ms(venue),
                staleness_s=max(0, now - info.last_ts) / 1000.0,
            )
            for venue, info in sorted(self.state.venues.items())
        ]

    def stale_changes(self, now: int) -> tuple[list[str], list[str]]:
        """(newly stale, fresh again) venues since the last call."""
        venues = self.state.venues
        stale = sorted(
            v for v, info in venues.items() if now - info.last_ts > self.stale_after_ms(v)
        )
        if stale == self.state.stale:  # the usual case: no venue changed
            return [], []
        before = set(self.state.stale)
        self.state.stale = stale
        return [v for v in stale if v not in before], [v for v in before if v not in stale]

    def fresh_instruments(self, now: int) -> list[str]:
        horizon = max(self.stale_after_ms(v) for v in self.state.venues) if self.state.venues else 0
        return sorted(i for i, ts in self.state.instruments.items() if now - ts <= horizon)

    def funding(self, now: int) -> float | None:
        """Mean latest funding rate over venues that are not stale."""
        rates = [
            m.funding
            for m in self.state.marks.values()
            if m.funding is not None and now - m.ts <= self.stale_after_ms(m.venue)
        ]
        return sum(rates) / len(rates) if rates else None

    def sample_oi(self, now: int, total_usd: float) -> None:
        history = self.state.oi_history
        history.append((now, total_usd))
        while history and history[0][0] < now - OI_HISTORY_MS:
            history.pop(0)

    def oi_delta(self, now: int, total_usd: float) -> float | None:
        """Change over the last hour, or since the oldest sample when history is shorter."""
        history = self.state.oi_history
        if not history or now - history[0][0] < 5 * OI_SAMPLE_MS:
            return None
        return total_usd - history[0][1]


def _touch(s: MarketState, venue: str, instrument: str, t: int) -> None:
    """The venue's and the instrument's last time (a new venue with its default completeness)."""
    info = s.venues.get(venue)
    if info is None:
        default = DEFAULT_COMPLETENESS.get(venue, Completeness.COMPLETE)
        s.venues[venue] = VenueInfo(last_ts=t, completeness=default)
    elif t > info.last_ts:
        info.last_ts = t
    held = s.instruments.get(instrument)
    if held is None:
        s.instruments[instrument] = max(0, t)
    elif t > held:
        s.instruments[instrument] = t
