"""One venue websocket that survives the internet, written once for every venue.

A ``VenueConnection`` connects, sends the endpoint's subscribe messages, keeps the venue's own
heartbeat, and hands every frame to ``on_frame(venue, channel, ts_recv, frame_bytes)``. It
reconnects and resubscribes after errors and closes (exponential backoff with jitter, reset
after a stable session), when the stream goes stale (no data frame for ``stale_after_s``),
when a heartbeat goes unanswered, and before the venue's connection lifetime ends. The
lifetime rollover is make-before-break: the replacement is connected and subscribed, both are
read until the new one has delivered data for a grace period, then the old one is closed
(frames seen on both are deduplicated downstream by ``event_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection

from liqwatch.schema import Venue
from producers.live.protocol import Endpoint, Heartbeat, VenueProtocol, json_message
from producers.metrics import ProducerMetrics
from producers.venues._common import CONTROL_CHANNEL

log = logging.getLogger(__name__)

OnFrame = Callable[[Venue, str, int, bytes], Awaitable[None] | None]
SHORT_FRAME = 256  # heartbeat replies are short: only short frames are checked for them


@dataclass(frozen=True)
class ConnectionPolicy:
    """Timings of one connection; every venue has defaults, tests shrink them."""

    heartbeat_interval_s: float
    stale_after_s: float
    lifetime_s: float | None
    pong_timeout_s: float = 10.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    stable_after_s: float = 30.0  # a session this long with data resets the backoff
    open_timeout_s: float = 10.0
    tick_s: float = 1.0  # how often the supervisor checks staleness, heartbeats, lifetime
    lifetime_margin_s: float = 600.0  # roll over this long before the venue would cut us
    handover_grace_s: float = 2.0  # the old connection is read this long after the new one has data


class Backoff:
    """Exponential backoff with equal jitter: half the delay fixed, half random."""

    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * 2.0**self.attempt)
        self.attempt += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class SessionState:
    started: float
    last_rx: float
    last_data: float
    data_frames: int = 0
    pings_sent: int = 0
    last_ping: float = 0.0
    awaiting_pong_since: float | None = None
    rpc_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1_000_000))


@dataclass
class Retiring:
    """The previous connection during a make-before-break handover: still read until the new
    connection has delivered data for ``handover_grace_s``, then closed."""

    ws: ClientConnection
    reader: asyncio.Task[None]
    close_at: float | None = None
    done: bool = False

    async def retire(self) -> None:
        if self.done:
            return
        self.done = True
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)
        await _close(self.ws)


class _Probe(msgspec.Struct):
    op: str | None = None
    ret_msg: str | None = None
    method: str | None = None
    params: dict[str, object] | None = None


_PROBE = msgspec.json.Decoder(_Probe)


class VenueConnection:
    def __init__(
        self,
        protocol: VenueProtocol,
        endpoint: Endpoint,
        on_frame: OnFrame,
        policy: ConnectionPolicy,
        *,
        metrics: ProducerMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.protocol = protocol
        self.endpoint = endpoint
        self.on_frame = on_frame
        self.policy = policy
        self.metrics = metrics
        self.clock = clock
        self.venue = protocol.venue
        self.backoff = Backoff(policy.backoff_base_s, policy.backoff_cap_s)
        self.reconnects: dict[str, int] = {}
        self.sessions = 0
        self.last_data = clock()  # across sessions: an outage keeps growing it
        if metrics is not None:
            metrics.watch_staleness(self.venue.value, endpoint.name, self.seconds_since_data)

    def seconds_since_data(self) -> float:
        return self.clock() - self.last_data

    # --- the loop ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: connect, serve, reconnect. Never raises on network trouble."""
        ws: ClientConnection | None = None
        retiring: Retiring | None = None
        while not stop.is_set():
            started = self.clock()
            state: SessionState | None = None
            try:
                ws = ws or await self._open()
                state = self._new_state()
                reason, ws, retiring = await self._serve(ws, state, stop, retiring)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # network, TLS, protocol, a callback bug: reconnect
                log.warning(
                    "%s %s: %s: %s", self.venue, self.endpoint.name, type(exc).__name__, exc
                )
                reason, ws, retiring = "error", None, None
            if ws is None:  # after a lifetime rollover the replacement is connected
                self._set_connected(0)
            if stop.is_set() or reason == "stop":
                break
            self._count_reconnect(reason)
            if state is not None and self._was_stable(state, started):
                self.backoff.reset()
            if ws is None:  # a lifetime rollover already holds the next connection
                await wait_or_stop(stop, self.backoff.next_delay())
        if retiring is not None:
            await retiring.retire()
        if ws is not None:
            await _close(ws)

    def _new_state(self) -> SessionState:
        now = self.clock()
        self.sessions += 1
        return SessionState(started=now, last_rx=now, last_data=now)

    def _was_stable(self, state: SessionState, started: float) -> bool:
        return state.data_frames > 0 and self.clock() - started >= self.policy.stable_after_s

    async def _open(self) -> ClientConnection:
        """Connects and sends the subscribe messages: a ready connection."""
        server_pings = self.protocol.heartbeat is Heartbeat.SERVER_PING
        interval = self.policy.heartbeat_interval_s if server_pings else None
        ws = await websockets.connect(
            self.endpoint.url,
            open_timeout=self.policy.open_timeout_s,
            ping_interval=interval,  # our own transport pings only where the venue pings us
            ping_timeout=self.policy.pong_timeout_s if server_pings else None,
            close_timeout=2,
            max_size=2**24,
            max_queue=4096,
        )
        try:
            for message in self.endpoint.subscribe:
                await ws.send(message)
        except BaseException:  # also cancelled mid-subscribe: do not leak the socket
            ws.transport.abort()
            raise
        log.info("%s %s connected and subscribed", self.venue, self.endpoint.name)
        self._set_connected(1)
        return ws

    async def _serve(
        self,
        ws: ClientConnection,
        state: SessionState,
        stop: asyncio.Event,
        retiring: Retiring | None,
    ) -> tuple[str, ClientConnection | None, Retiring | None]:
        """Reads until the session ends; returns why, the replacement if one is open, and
        this connection if it must still be read during the handover."""
        reader = asyncio.create_task(self._read(ws, state))
        supervisor = asyncio.create_task(self._supervise(ws, state, stop, retiring))
        outcome: tuple[str, ClientConnection | None] | None = None
        try:
            done, _ = await asyncio.wait({reader, supervisor}, return_when=asyncio.FIRST_COMPLETED)
            if supervisor in done and supervisor.exception() is None:
                outcome = supervisor.result()
        finally:
            handing_over = outcome is not None and outcome[0] == "lifetime"
            tasks = (supervisor,) if handing_over else (supervisor, reader)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if retiring is not None:
                await retiring.retire()
            if not handing_over:
                await _close(ws)  # this connection is done
        if outcome is not None:
            reason, replacement = outcome
            return reason, replacement, Retiring(ws, reader) if handing_over else None
        failed = reader if reader in done else supervisor
        error = failed.exception() if failed in done else None
        if error is not None and not isinstance(error, websockets.ConnectionClosed):
            raise error
        return "closed", None, None

    # --- reading ----------------------------------------------------------------------------

    async def _read(self, ws: ClientConnection, state: SessionState) -> None:
        venue, on_frame, clock, channel_of = (
            self.venue,
            self.on_frame,
            self.clock,
            self.protocol.channel_of,
        )
        async for message in ws:
            ts_recv = int(time.time() * 1000)
            frame = message.encode() if isinstance(message, str) else bytes(message)
            state.last_rx = clock()
            state.awaiting_pong_since = None  # anything from the venue proves the link is alive
            if len(frame) < SHORT_FRAME and await self._heartbeat_frame(ws, frame, state):
                continue
            channel = channel_of(frame) or CONTROL_CHANNEL
            if channel != CONTROL_CHANNEL:
                self.last_data = state.last_data = state.last_rx
                state.data_frames += 1
            try:
                pending = on_frame(venue, channel, ts_recv, frame)
                if pending is not None:
                    await pending
            except Exception:  # a consumer bug costs this frame, logged, not the connection
                self._callback_failed(channel)

    async def _heartbeat_frame(
        self, ws: ClientConnection, frame: bytes, state: SessionState
    ) -> bool:
        """Handles a heartbeat frame (pong, Deribit test_request); True if it was one."""
        if self.protocol.pong(frame):
            return True
        if self.protocol.heartbeat is not Heartbeat.JSON_RPC or b'"heartbeat"' not in frame:
            return False
        try:
            probe = _PROBE.decode(frame)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return False
        if probe.method != "heartbeat":
            return False
        if probe.params is not None and probe.params.get("type") == "test_request":
            reply = {
                "jsonrpc": "2.0",
                "id": next(state.rpc_ids),
                "method": "public/test",
                "params": {},
            }
            await ws.send(json_message(reply))
        return True

    # --- supervising ------------------------------------------------------------------------

    async def _supervise(
        self,
        ws: ClientConnection,
        state: SessionState,
        stop: asyncio.Event,
        retiring: Retiring | None,
    ) -> tuple[str, ClientConnection | None]:
        policy = self.policy
        deadline = None
        if policy.lifetime_s is not None:
            margin = min(policy.lifetime_margin_s, policy.lifetime_s / 10)
            deadline = state.started + policy.lifetime_s - margin * random.uniform(0.5, 1.0)
        while True:
            if await wait_or_stop(stop, policy.tick_s):
                return "stop", None
            now = self.clock()
            if now - state.last_data > policy.stale_after_s:
                log.warning(
                    "%s %s: no data for %.1f s",
                    self.venue,
                    self.endpoint.name,
                    now - state.last_data,
                )
                return "stale", None
            if not await self._keep_alive(ws, state, now):
                log.warning("%s %s: heartbeat unanswered", self.venue, self.endpoint.name)
                return "heartbeat", None
            if retiring is not None:
                await self._hand_over(retiring, state, now)
            if deadline is not None and now >= deadline:
                return "lifetime", await self._open()  # this one keeps reading meanwhile

    async def _hand_over(self, retiring: Retiring, state: SessionState, now: float) -> None:
        """Closes the previous connection once this one has delivered data for a grace
        period (both are read meanwhile; duplicates share event ids), or when it never does."""
        if retiring.close_at is None and state.data_frames:
            retiring.close_at = now + self.policy.handover_grace_s
        overdue = now - state.started > self.policy.stale_after_s
        if overdue or (retiring.close_at is not None and now >= retiring.close_at):
            await retiring.retire()

    async def _keep_alive(self, ws: ClientConnection, state: SessionState, now: float) -> bool:
        """Sends the venue's ping when due; False when a ping went unanswered too long."""
        waiting = state.awaiting_pong_since
        if waiting is not None and now - waiting > self.policy.pong_timeout_s:
            return False
        kind, interval, ping = (
            self.protocol.heartbeat,
            self.policy.heartbeat_interval_s,
            self.protocol.ping,
        )
        due = False
        if kind is Heartbeat.JSON_PING:
            due = now - state.last_ping >= interval
        elif kind is Heartbeat.TEXT_PING:
            due = now - state.last_rx >= interval and waiting is None
        if due and ping is not None:
            await ws.send(ping)
            state.pings_sent += 1
            state.last_ping = now
            if waiting is None:
                state.awaiting_pong_since = now
        return True

    # --- metrics ----------------------------------------------------------------------------

    def _callback_failed(self, channel: str) -> None:
        log.exception(
            "%s %s: on_frame failed for a %s frame", self.venue, self.endpoint.name, channel
        )
        if self.metrics is not None:
            self.metrics.callback_errors.labels(self.venue.value).inc()

    def _count_reconnect(self, reason: str) -> None:
        self.reconnects[reason] = self.reconnects.get(reason, 0) + 1
        log.info("%s %s reconnecting (%s)", self.venue, self.endpoint.name, reason)
        if self.metrics is not None:
            self.metrics.reconnected(self.venue.value, reason)

    def _set_connected(self, value: int) -> None:
        if self.metrics is not None:
            self.metrics.connected.labels(self.venue.value, self.endpoint.name).set(value)


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleeps up to ``seconds``; True if ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def _close(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), timeout=3)
