"""Kafka topic names. Key = asset everywhere, so one asset's events share a partition."""

from __future__ import annotations

from dataclasses import dataclass

from liqwatch.schema import EventKind


@dataclass(frozen=True)
class Topics:
    prefix: str = "liq."

    @property
    def liquidations(self) -> str:
        return f"{self.prefix}liquidations"

    @property
    def open_interest(self) -> str:
        return f"{self.prefix}open_interest"

    @property
    def mark_price(self) -> str:
        return f"{self.prefix}mark_price"

    @property
    def signals(self) -> str:
        return f"{self.prefix}signals"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    @property
    def deliveries(self) -> str:
        return f"{self.prefix}deliveries"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}dlq"

    def for_kind(self, kind: EventKind) -> str:
        return {
            EventKind.LIQUIDATION: self.liquidations,
            EventKind.OPEN_INTEREST: self.open_interest,
            EventKind.MARK_PRICE: self.mark_price,
        }[kind]

    @property
    def market(self) -> list[str]:
        return [self.liquidations, self.open_interest, self.mark_price]

    @property
    def all(self) -> list[str]:
        return [*self.market, self.signals, self.alerts, self.deliveries, self.dlq]
