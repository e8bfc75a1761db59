"""Turns one asset's detector events into output records, with the alert context
(price, open interest, funding, instruments, venue coverage) taken at the moment of the claim."""

from __future__ import annotations

import logging

from liqwatch.schema import Alert, AlertUpdate, CascadePhase, Signal
from processors.engine import claims
from processors.engine.alerts import AlertContext, Claim, build_alert
from processors.engine.cascade import CascadeEvent
from processors.engine.config import AssetConfig
from processors.engine.estimated import EstimatedLayer
from processors.engine.market import MarketContext
from processors.engine.sweep import SweepResult

log = logging.getLogger(__name__)

Output = Signal | Alert | AlertUpdate


class Reporter:
    def __init__(
        self, asset: str, cfg: AssetConfig, market: MarketContext, estimated: EstimatedLayer
    ) -> None:
        self.asset = asset
        self.cfg = cfg
        self.market = market
        self.estimated = estimated

    def context(self, now: int) -> AlertContext:
        total_oi = self.estimated.total_oi_usd()
        return AlertContext(
            asset=self.asset,
            now=now,
            price=self.market.state.price,
            instruments=self.market.fresh_instruments(now),
            venues=self.market.coverage(now),
            oi_usd=total_oi if self.estimated.state.instruments else None,
            oi_delta_1h_usd=self.market.oi_delta(now, total_oi),
            funding=self.market.funding(now),
        )

    def alert(self, claim: Claim, now: int) -> list[Output]:
        """The alert, or nothing (logged) when it cannot state its invalidation."""
        alert = build_alert(claim, self.context(now))
        if alert is None:
            log.warning("%s alert %s dropped: no invalidation level", claim.kind, claim.alert_id)
            return []
        return [alert]

    def cascade(self, ev: CascadeEvent) -> list[Output]:
        window_s = self.cfg.cascade.window_s
        out: list[Output] = [claims.cascade_signal(self.asset, ev, window_s)]
        if ev.phase is CascadePhase.STARTED:
            out += self.alert(claims.cascade_claim(self.asset, ev, window_s), ev.ts)
        else:
            out.append(claims.cascade_update(ev))
        return out

    def sweep(self, res: SweepResult) -> list[Output]:
        out: list[Output] = [claims.sweep_signal(self.asset, res)]
        if res.confirmed or self.cfg.sweep.alert_unconfirmed:
            out += self.alert(claims.sweep_claim(self.asset, res), res.ts)
        return out
