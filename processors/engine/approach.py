"""Approach: the predictive alert, raised before price reaches a bright cluster.

Raised when price comes within ``distance_pct`` of a bright cluster's near edge (and is not
inside it). It resolves as ``swept`` when that cluster is swept, ``invalidated`` when price
moves ``invalidation_pct`` away from the near edge, or ``expired`` after ``ttl_s`` or when the
cluster disappears. A cluster that had an approach is re-armed only once price is
``rearm_pct`` away again, so price hovering at the distance does not re-alert.
"""

from __future__ import annotations

from dataclasses import dataclass

from liqwatch.schema import AlertStatus, Intensity
from processors.engine.common import LONG
from processors.engine.config import ApproachConfig
from processors.engine.state import ApproachState, OpenApproach, TrackedCluster
from processors.engine.tracker import ClusterTracker


@dataclass(frozen=True)
class ApproachResolution:
    approach: OpenApproach
    status: AlertStatus
    ts: int
    price: float


def invalidation_level(side: int, near: float, pct: float) -> float:
    """Price at which the distance to the near edge reaches ``pct`` % of price."""
    return near / (1 - pct / 100.0) if side == LONG else near / (1 + pct / 100.0)


class ApproachDetector:
    def __init__(self, cfg: ApproachConfig, asset: str, state: ApproachState | None = None) -> None:
        self.cfg = cfg
        self.asset = asset
        self.state = state or ApproachState()

    def check(self, now: int, price: float, tracker: ClusterTracker) -> list[OpenApproach]:
        """New approaches at this price (the caller turns them into alerts)."""
        opened: list[OpenApproach] = []
        busy: set[str] | None = None  # built only once a bright cluster needs it
        for c in tracker.clusters:
            if c.tier is not Intensity.BRIGHT or c.ever_touched:
                continue
            if busy is None:
                busy = {a.cid for a in self.state.open} | set(self.state.disarmed)
            if c.cid in busy:
                continue
            distance = tracker.distance_pct(c, price)
            if 0 < distance <= self.cfg.distance_pct:
                opened.append(self._open(c, tracker, now, price))
        self.state.open += opened
        return opened

    def _open(
        self, c: TrackedCluster, tracker: ClusterTracker, now: int, price: float
    ) -> OpenApproach:
        lo, hi = tracker.band(c)
        near = tracker.near_edge(c)
        side = "long" if c.side == LONG else "short"
        return OpenApproach(
            alert_id=f"approach-{self.asset}-{side}-{now}-{c.lo}",
            cid=c.cid,
            side=c.side,
            band_lo=lo,
            band_hi=hi,
            near=near,
            invalidation=invalidation_level(c.side, near, self.cfg.invalidation_pct),
            created_at=now,
            price_at=price,
            notional=c.notional,
            zscore=c.peak_z,
        )

    def resolve(
        self, now: int, price: float, tracker: ClusterTracker, swept: list[str]
    ) -> list[ApproachResolution]:
        if not self.state.open:  # the usual case: nothing to resolve, maybe some to re-arm
            self._rearm(price, tracker)
            return []
        out: list[ApproachResolution] = []
        still: list[OpenApproach] = []
        alive = {c.cid for c in tracker.clusters}
        for a in self.state.open:
            status = self._status(a, now, price, alive, swept)
            if status is None:
                still.append(a)
                continue
            out.append(ApproachResolution(a, status, now, price))
            if a.cid in alive:
                self.state.disarmed.append(a.cid)
        self.state.open = still
        self._rearm(price, tracker)
        return out

    def _status(
        self, a: OpenApproach, now: int, price: float, alive: set[str], swept: list[str]
    ) -> AlertStatus | None:
        if a.cid in swept:
            return AlertStatus.SWEPT
        beyond = price >= a.invalidation if a.side == LONG else price <= a.invalidation
        if beyond:
            return AlertStatus.INVALIDATED
        if a.cid not in alive or now >= a.created_at + self.cfg.ttl_s * 1000:
            return AlertStatus.EXPIRED
        return None

    def _rearm(self, price: float, tracker: ClusterTracker) -> None:
        if not self.state.disarmed:
            return
        by_id = {c.cid: c for c in tracker.clusters}
        self.state.disarmed = [
            cid
            for cid in self.state.disarmed
            if cid in by_id and tracker.distance_pct(by_id[cid], price) < self.cfg.rearm_pct
        ]
