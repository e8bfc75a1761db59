"""What the Dispatcher passes around: its settings, queued jobs and per-target deliveries."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from alerts.render import Rendered
from alerts.rules import ResolvedRoute
from alerts.sender import Attachment, RetryPolicy
from alerts.targets import Target
from liqwatch.schema import Alert, AlertUpdate, Delivery

log = logging.getLogger(__name__)

AttachmentSource = Callable[[], Sequence[Attachment]]
Attachments = Sequence[Attachment] | AttachmentSource | None
DeliverySink = Callable[[Delivery], None]

NO_TARGETS = "route has no notification targets"
STOPPED = "alerter stopped before the delivery finished"


@dataclass(frozen=True)
class DeliveryConfig:
    queue_size: int = 1000
    max_in_flight: int = 256  # delivery tasks alive at once; beyond it the queue fills
    per_target: int = 4  # concurrent sends to one target, so one outage delays no other
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    digest_tick_s: float = 1.0
    remember_alerts: int = 10_000  # originals kept to render their follow-ups


@dataclass
class Job:
    message: Alert | AlertUpdate
    attachments: Attachments
    submitted: float  # monotonic
    on_done: Callable[[], None] | None = None
    resolved: Sequence[Attachment] | None = None
    outstanding: int = 0  # delivery tasks still running for this message
    handled: bool = False  # routing finished: no more tasks will be added
    aborted: bool = False  # stopped before finishing: not done, so a consumer re-reads it

    def settle(self) -> None:
        """Call ``on_done`` once routing is over and every delivery task has finished."""
        if self.aborted:
            return
        if self.handled and self.outstanding == 0 and self.on_done is not None:
            callback, self.on_done = self.on_done, None
            try:
                callback()
            except Exception:
                log.exception("on_done callback for %s failed", self.message.alert_id)


@dataclass(frozen=True)
class Ref:
    """Which delivery a record is about: alert/update, route and (redacted) target."""

    alert_id: str
    seq: int
    route: str
    target: str
    target_key: str
    channel: str

    @classmethod
    def of(cls, alert_id: str, seq: int, route: ResolvedRoute, target: Target) -> Ref:
        return cls(alert_id, seq, route.name, target.name, target.key, target.channel.value)


@dataclass(frozen=True)
class Send:
    ref: Ref
    target: Target
    rendered: Rendered
    job: Job | None
    with_attachments: bool
