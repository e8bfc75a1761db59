"""The Dispatcher: alerts in, one Delivery record per route and target out; never blocks detection.

``submit`` only puts the message on a bounded asyncio queue (a full queue is recorded as a failed
Delivery and counted: the alert record itself is stored upstream). A worker task routes each
message, renders it per channel and starts one delivery task per target (bounded concurrency);
each task retries with exponential backoff and ends in exactly one Delivery record. A SQLite
store of decided (alert id, update seq, route, target) keys makes replays send nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from alerts.destinations import Destinations
from alerts.jobs import (
    NO_TARGETS,
    STOPPED,
    Attachments,
    DeliveryConfig,
    DeliverySink,
    Job,
    Ref,
    Send,
)
from alerts.metrics import AlerterMetrics
from alerts.redact import SecretRedactor, global_redactor
from alerts.render import Rendered, render_alert, render_digest, render_update
from alerts.router import Decision, Digest, Router
from alerts.rules import load_rules
from alerts.sender import Attachment, Sender
from alerts.store import SentStore
from alerts.targets import Target
from liqwatch.schema import Alert, AlertUpdate, Delivery, DeliveryStatus, Severity
from liqwatch.settings import NotifySettings

__all__ = ["NO_TARGETS", "Attachments", "DeliveryConfig", "DeliverySink", "Dispatcher"]

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(
        self,
        router: Router,
        destinations: Destinations,
        store: SentStore,
        on_delivery: DeliverySink,
        metrics: AlerterMetrics,
        *,
        config: DeliveryConfig | None = None,
        redactor: SecretRedactor | None = None,
    ) -> None:
        self.config = config or DeliveryConfig()
        self.router = router
        self.destinations = destinations
        self.store = store
        self._on_delivery = on_delivery
        self._metrics = metrics
        self._redactor = redactor or global_redactor()
        self._sender = Sender(self.config.retry, metrics, self._redactor)
        self._queue: asyncio.Queue[Job] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._target_slots: dict[str, asyncio.Semaphore] = {}
        self._handling = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._chains: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._alerts: OrderedDict[str, Alert] = OrderedDict()
        self._in_flight_alert: dict[str, set[tuple[str, str]]] = {}
        self._event_clock = (0, 0.0)  # (latest message time ms, monotonic when seen)

    @classmethod
    def from_settings(
        cls,
        notify: NotifySettings,
        state_dir: Path,
        on_delivery: DeliverySink,
        metrics: AlerterMetrics,
        config: DeliveryConfig | None = None,
    ) -> Dispatcher:
        """Rules from ``notify.rules_file`` (or the default set), targets from env/secret files."""
        redactor = global_redactor()
        rules = load_rules(notify.rules_file)
        destinations = Destinations(rules, notify, redactor)
        for route in rules.routes:
            if not destinations.targets(route.name):
                log.warning(
                    "route %r has no notification targets: nothing will be sent", route.name
                )
        store = SentStore(state_dir / "sent.sqlite3")
        return cls(
            Router(rules),
            destinations,
            store,
            on_delivery,
            metrics,
            config=config,
            redactor=redactor,
        )

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(self.config.queue_size)
        self._slots = asyncio.Semaphore(self.config.max_in_flight)
        self._worker = asyncio.create_task(self._run(), name="liqwatch-dispatcher")

    async def join(self, timeout_s: float | None = None) -> bool:
        """Wait until the queue is empty and no delivery is in flight; False on timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._busy():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Send pending digests, wait for in-flight deliveries, then cancel what is left."""
        if self._worker is None:
            return
        await self._flush_digests(force=True)
        await self.join(drain_timeout_s)
        self._worker.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(self._worker, *self._tasks, return_exceptions=True)
        self._worker = None
        self._record_unsent()
        self.store.close()

    def _record_unsent(self) -> None:
        """Jobs still queued at stop: recorded as failed, never reported done (so re-read)."""
        assert self._queue is not None
        while not self._queue.empty():
            job = self._queue.get_nowait()
            job.aborted = True
            self._refuse(job.message, STOPPED)

    @property
    def queue_free(self) -> int:
        """Room left in the queue: a Kafka consumer pauses instead of overflowing it."""
        used = self._queue.qsize() if self._queue is not None else 0
        return self.config.queue_size - used

    def _busy(self) -> bool:
        queued = self._queue is not None and self._queue.qsize() > 0
        return queued or bool(self._tasks) or self._handling

    # --- submit (never blocks) -----------------------------------------------------------

    def submit(
        self,
        message: Alert | AlertUpdate,
        attachments: Attachments = None,
        on_done: Callable[[], None] | None = None,
    ) -> bool:
        """Queue a message for delivery; False if the queue was full (recorded as failed).

        ``attachments``: files, or a callable returning them that runs in a worker thread only
        if some target takes attachments (so a PNG is rendered off the caller's path).
        ``on_done`` is called on the dispatcher's loop once every delivery of this message has
        its final record (also right away when the queue was full). Safe to call from the
        dispatcher's event loop (returns at once) or from another thread (handed over to the
        loop; the result is then always True).
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("Dispatcher.start() has not been awaited")
        job = Job(message, attachments, time.monotonic(), on_done)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return self._enqueue(job)
        loop.call_soon_threadsafe(self._enqueue, job)
        return True

    def _enqueue(self, job: Job) -> bool:
        assert self._queue is not None
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._metrics.queue_full.inc()
            self._refuse(job.message, f"delivery queue full ({self.config.queue_size})")
            job.handled = True
            job.settle()
            return False
        self._metrics.queue_depth.set(self._queue.qsize())
        return True

    def _refuse(self, message: Alert | AlertUpdate, reason: str) -> None:
        seq = 0 if isinstance(message, Alert) else message.seq
        log.error("alert %s not delivered: %s", message.alert_id, reason)
        self._emit(
            Ref(message.alert_id, seq, "*", "*", "*", "none"), DeliveryStatus.FAILED, 0, reason
        )

    # --- worker ------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            try:
                job = await asyncio.wait_for(self._queue.get(), self.config.digest_tick_s)
            except TimeoutError:
                job = None
            if job is not None:
                self._handling = True
                try:
                    await self._handle(job)
                except asyncio.CancelledError:  # stopped while routing it (waiting for a slot)
                    job.aborted = True
                    self._refuse(job.message, STOPPED)
                    raise
                except Exception as exc:  # one bad message must not stop the alerter
                    log.exception("alert %s could not be handled", job.message.alert_id)
                    self._refuse(job.message, f"internal error: {type(exc).__name__}")
                finally:
                    job.handled = True
                    job.settle()
                    self._handling = False
                    self._queue.task_done()
                    self._metrics.queue_depth.set(self._queue.qsize())
            try:
                await self._flush_digests()
            except Exception:  # a digest must not stop the worker either
                log.exception("flood digest could not be sent")

    async def _handle(self, job: Job) -> None:
        message = job.message
        ts = message.created_at if isinstance(message, Alert) else message.ts
        if ts > self._event_clock[0]:
            self._event_clock = (ts, time.monotonic())
        if isinstance(message, Alert):
            await self._handle_alert(message, job)
        else:
            await self._handle_update(message, job)

    async def _handle_alert(self, alert: Alert, job: Job) -> None:
        self._remember(alert)
        for route in self.router.match(alert):
            targets = self.destinations.targets(route.name)
            fresh = [t for t in targets if not self._decided(Ref.of(alert.alert_id, 0, route, t))]
            if targets and not fresh:
                continue  # a replay: every target already decided
            decision = self.router.decide(alert, route)
            if not targets:
                ref = Ref(alert.alert_id, 0, route.name, "-", "-", "none")
                self._emit(ref, DeliveryStatus.SUPPRESSED, 0, NO_TARGETS)
                continue
            for target in fresh:
                ref = Ref.of(alert.alert_id, 0, route, target)
                await self._apply(decision, ref, target, job, render_alert(alert, target.channel))

    async def _handle_update(self, update: AlertUpdate, job: Job) -> None:
        original = self._alerts.get(update.alert_id)
        severity = original.severity if original else Severity.INFO
        pairs = self.store.sent_targets(update.alert_id)
        pairs |= self._in_flight_alert.get(update.alert_id, set())
        routes = {r.name: r for r in self.router.rules.routes}
        for route_name, target_key in sorted(pairs):
            route = routes.get(route_name)
            target = self._target(route_name, target_key)
            if route is None or target is None:
                continue  # the route or target was removed from the config since
            ref = Ref.of(update.alert_id, update.seq, route, target)
            if self._decided(ref):
                continue
            decision = self.router.decide_update(update, route, severity)
            if decision is not None:
                rendered = render_update(update, original, target.channel)
                await self._apply(decision, ref, target, job, rendered)

    async def _apply(
        self, decision: Decision, ref: Ref, target: Target, job: Job | None, rendered: Rendered
    ) -> None:
        if not decision.send:
            self.store.record(
                ref.alert_id, ref.seq, ref.route, ref.target_key, status="suppressed", ts=_wall_ms()
            )
            self._emit(ref, DeliveryStatus.SUPPRESSED, 0, decision.reason)
            return
        route = decision.route
        with_png = ref.seq == 0 and route.attach_heatmap and target.supports_attachments
        await self._launch(Send(ref, target, rendered, job, with_png))

    def _decided(self, ref: Ref) -> bool:
        if self.store.decided(ref.alert_id, ref.seq, ref.route, ref.target_key) is None:
            return False
        self._metrics.replays.inc()
        return True

    # --- delivery tasks ----------------------------------------------------------------

    async def _launch(self, send: Send) -> None:
        assert self._slots is not None
        await self._slots.acquire()  # back-pressure: the queue fills instead of memory
        ref = send.ref
        chain_key = (ref.alert_id, ref.target_key)
        previous = self._chains.get(chain_key)
        if ref.seq == 0:
            self._in_flight_alert.setdefault(ref.alert_id, set()).add((ref.route, ref.target_key))
        task = asyncio.create_task(self._deliver(send, previous))
        self._tasks.add(task)
        self._chains[chain_key] = task
        self._metrics.in_flight.set(len(self._tasks))
        if send.job is not None:
            send.job.outstanding += 1
        task.add_done_callback(lambda t: self._finished(t, send, chain_key))

    def _finished(self, task: asyncio.Task[None], send: Send, chain_key: tuple[str, str]) -> None:
        assert self._slots is not None
        ref = send.ref
        if send.job is not None:
            send.job.outstanding -= 1
            send.job.settle()
        self._tasks.discard(task)
        self._slots.release()
        if self._chains.get(chain_key) is task:
            del self._chains[chain_key]
        if ref.seq == 0:
            pending = self._in_flight_alert.get(ref.alert_id, set())
            pending.discard((ref.route, ref.target_key))
            if not pending:
                self._in_flight_alert.pop(ref.alert_id, None)
        self._metrics.in_flight.set(len(self._tasks))

    async def _deliver(self, send: Send, previous: asyncio.Task[None] | None) -> None:
        started = send.job.submitted if send.job else time.monotonic()
        ref = send.ref
        try:
            if previous is not None:
                await asyncio.wait([previous])  # follow-ups after the alert, per target
            files = await self._attachments(send.job) if send.with_attachments else ()
            slot = self._target_slots.setdefault(
                ref.target_key, asyncio.Semaphore(self.config.per_target)
            )
            async with slot:
                result = await self._sender.send(send.target, send.rendered, files)
        except asyncio.CancelledError:
            if send.job is not None:
                send.job.aborted = True
            self._emit(ref, DeliveryStatus.FAILED, 0, STOPPED)
            raise
        if result.ok:
            self.store.record(
                ref.alert_id, ref.seq, ref.route, ref.target_key, status="sent", ts=_wall_ms()
            )
        self._metrics.delivery_seconds.observe(time.monotonic() - started)
        status = DeliveryStatus.SENT if result.ok else DeliveryStatus.FAILED
        self._emit(ref, status, result.attempts, result.error)

    async def _attachments(self, job: Job | None) -> Sequence[Attachment]:
        if job is None or job.attachments is None:
            return ()
        if job.resolved is None:
            source = job.attachments
            if not callable(source):
                job.resolved = source
            else:
                started = time.perf_counter()
                try:
                    job.resolved = await asyncio.to_thread(source)
                except Exception:
                    log.exception(
                        "heatmap attachment for %s failed; sending without it", job.message.alert_id
                    )
                    job.resolved = ()
                self._metrics.render_seconds.observe(time.perf_counter() - started)
        return job.resolved

    # --- digests -----------------------------------------------------------------------

    async def _flush_digests(self, *, force: bool = False) -> None:
        for digest in self.router.due_digests(self._now_ms(), force=force):
            await self._send_digest(digest)

    async def _send_digest(self, digest: Digest) -> None:
        route = digest.route
        decision = Decision(route, True)
        for target in self.destinations.targets(route.name):
            ref = Ref.of(digest.digest_id, 0, route, target)
            if not self._decided(ref):
                rendered = render_digest(digest, target.channel)
                await self._apply(decision, ref, target, None, rendered)

    def _now_ms(self) -> int:
        """Event time advanced by the wall time since the latest message (replays stay fast)."""
        latest, seen_at = self._event_clock
        if latest == 0:
            return _wall_ms()
        return latest + int((time.monotonic() - seen_at) * 1000)

    # --- records -----------------------------------------------------------------------

    def _emit(self, ref: Ref, status: DeliveryStatus, attempts: int, error: str) -> None:
        record = Delivery(
            alert_id=ref.alert_id,
            update_seq=ref.seq,
            route=ref.route,
            target=ref.target,
            status=status,
            attempts=attempts,
            error=self._redactor.redact(error),
            ts=_wall_ms(),
        )
        self._metrics.deliveries.labels(status.value, ref.channel).inc()
        try:
            self._on_delivery(record)
        except Exception:
            log.exception("delivery record for %s could not be emitted", ref.alert_id)

    def _remember(self, alert: Alert) -> None:
        self._alerts[alert.alert_id] = alert
        self._alerts.move_to_end(alert.alert_id)
        while len(self._alerts) > self.config.remember_alerts:
            self._alerts.popitem(last=False)

    def _target(self, route_name: str, target_key: str) -> Target | None:
        for target in self.destinations.targets(route_name):
            if target.key == target_key:
                return target
        return None


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000
