"""One rendered message to one target through Apprise: timeout, retries, exponential backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from alerts.apprise_compat import Apprise, AppriseAttachment, AttachMemory
from alerts.metrics import AlerterMetrics
from alerts.redact import SecretRedactor
from alerts.render import Rendered
from alerts.targets import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attachment:
    name: str
    data: bytes
    mimetype: str = "image/png"


@dataclass(frozen=True)
class RetryPolicy:
    timeout_s: float = 15.0  # per attempt
    max_attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0

    def delay(self, attempt: int) -> float:
        """Wait after the ``attempt``-th failure (1-based): base, 2·base, 4·base … capped."""
        return float(min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class SendResult:
    ok: bool
    attempts: int
    error: str


Sleep = Callable[[float], Awaitable[None]]


class Sender:
    def __init__(
        self,
        policy: RetryPolicy,
        metrics: AlerterMetrics,
        redactor: SecretRedactor,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.policy = policy
        self._metrics = metrics
        self._redactor = redactor
        self._sleep = sleep
        self._apprise: dict[str, Apprise] = {}

    async def send(
        self, target: Target, message: Rendered, attachments: Sequence[Attachment] = ()
    ) -> SendResult:
        attach = _apprise_attachments(attachments) if attachments else None
        error = ""
        for attempt in range(1, self.policy.max_attempts + 1):
            if attempt > 1:
                self._metrics.retries.inc()
            error = await self._attempt(target, message, attach)
            if not error:
                return SendResult(True, attempt, "")
            log.warning("delivery to %s failed (attempt %d): %s", target.name, attempt, error)
            if attempt < self.policy.max_attempts:
                await self._sleep(self.policy.delay(attempt))
        return SendResult(False, self.policy.max_attempts, error)

    async def _attempt(
        self, target: Target, message: Rendered, attach: AppriseAttachment | None
    ) -> str:
        """'' on success, else a short redacted reason."""
        app = self._apprise.get(target.key)
        if app is None:
            app = self._apprise[target.key] = target.apprise()
        timeout = self.policy.timeout_s
        try:
            result = await asyncio.wait_for(
                app.async_notify(
                    body=message.body,
                    title=message.title,
                    notify_type=message.notify_type,
                    body_format=message.body_format,
                    attach=attach,
                    timeout=timeout,
                ),
                timeout + 2.0,
            )
        except TimeoutError:
            return f"timed out after {timeout:.0f} s"
        except Exception as exc:  # a plugin bug must not kill the dispatcher
            return self._redactor.redact(f"{type(exc).__name__}: {exc}")[:300]
        with result:
            if result:
                return ""
            return self._reason(result)

    def _reason(self, result: object) -> str:
        status = getattr(result, "status", None)
        text = f"apprise {getattr(status, 'name', 'failure').lower()}"
        problems = [
            entry.message
            for entry in result.logs()  # type: ignore[attr-defined]
            if entry.level in ("WARNING", "ERROR")
        ]
        if problems:
            text += ": " + problems[-1]
        return self._redactor.redact(text)[:300]


def _apprise_attachments(attachments: Sequence[Attachment]) -> AppriseAttachment:
    bundle = AppriseAttachment()
    for item in attachments:
        memory = AttachMemory(content=item.data, name=item.name, mimetype=item.mimetype)  # type: ignore[no-untyped-call]
        bundle.add(memory)
    return bundle
