"""Local fake venue servers (websockets on 127.0.0.1), one protocol each.

A ``FakeVenue`` answers subscriptions the way its venue does, enforces the venue's heartbeat
(server pings for Binance, ``{"op":"ping"}`` for Bybit, text ``ping`` for OKX and BitMEX,
``test_request`` / ``public/test`` for Deribit), and serves liquidation frames: replayed from
the start on every connection, or broadcast on a clock to every subscribed connection. It can
drop the first connection (transport abort, no close frame) or go silent on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from liqwatch.schema import Venue

TS = 1_760_130_312_000


@dataclass
class Behaviour:
    drop_after: int | None = None  # first connection: abort after this many frames
    silent_after: int | None = None  # first connection: no more data after this many frames
    broadcast_interval_s: float | None = (
        None  # one feed on a clock instead of per-connection replay
    )
    require_heartbeat_s: float | None = None  # close a client whose heartbeat lapsed this long
    frame_interval_s: float = 0.005


@dataclass
class Stats:
    connections: int = 0
    paths: list[str] = field(default_factory=list)
    subscriptions: list[list[Any]] = field(default_factory=list)  # per connection
    pings: int = 0
    test_replies: int = 0
    pongs_seen: int = 0  # Binance: client answers to the server's pings
    closed_for_heartbeat: int = 0
    frames_sent: int = 0


@dataclass
class _Client:
    number: int
    ws: ServerConnection
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    last_rx: float = field(default_factory=time.monotonic)
    last_tx: float = field(default_factory=time.monotonic)
    last_ping: float = field(default_factory=time.monotonic)
    test_sent_at: float | None = None
    heartbeat_s: float | None = None


def liquidation_frames(venue: Venue, n: int) -> list[bytes]:
    """n distinct BTC liquidation frames in the venue's documented shape."""
    return [_FRAMES[venue](i) for i in range(n)]


def _binance(i: int, symbol: str = "BTCUSDT", qty: str | None = None) -> bytes:
    q = qty or f"{0.1 + i / 100:.3f}"
    data = {
        "e": "forceOrder",
        "E": TS + i * 10 + 5,
        "o": {
            "s": symbol,
            "S": "SELL" if i % 2 else "BUY",
            "o": "LIMIT",
            "f": "IOC",
            "q": q,
            "p": f"{112000 + i:.2f}",
            "ap": f"{112000 + i:.2f}",
            "X": "FILLED",
            "l": q,
            "z": q,
            "T": TS + i * 10,
        },
    }
    return json.dumps({"stream": f"{symbol.lower()}@forceOrder", "data": data}).encode()


def _bybit(i: int) -> bytes:
    item = {
        "T": TS + i * 10,
        "s": "BTCUSDT",
        "S": "Buy" if i % 2 else "Sell",
        "v": f"{0.5 + i / 100:.3f}",
        "p": f"{112000 + i:.2f}",
    }
    return json.dumps(
        {
            "topic": "allLiquidation.BTCUSDT",
            "type": "snapshot",
            "ts": TS + i * 10 + 300,
            "data": [item],
        }
    ).encode()


def _okx(i: int) -> bytes:
    detail = {
        "bkLoss": "0",
        "bkPx": f"{112000 + i:.1f}",
        "ccy": "",
        "posSide": "net",
        "side": "sell" if i % 2 else "buy",
        "sz": str(10 + i),
        "ts": str(TS + i * 10),
    }
    return json.dumps(
        {
            "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
            "data": [
                {
                    "details": [detail],
                    "instFamily": "BTC-USDT",
                    "instId": "BTC-USDT-SWAP",
                    "instType": "SWAP",
                    "uly": "BTC-USDT",
                }
            ],
        }
    ).encode()


def _deribit(i: int) -> bytes:
    trade = {
        "trade_seq": i,
        "trade_id": str(900000 + i),
        "timestamp": TS + i * 10,
        "tick_direction": 0,
        "price": 112000.0 + i,
        "mark_price": 112000.0,
        "index_price": 112000.0,
        "instrument_name": "BTC-PERPETUAL",
        "direction": "sell" if i % 2 else "buy",
        "amount": 1000.0 + i * 10,
        "liquidation": "T",
    }
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "method": "subscription",
            "params": {"channel": "trades.BTC-PERPETUAL.100ms", "data": [trade]},
        }
    ).encode()


def _bitmex(i: int) -> bytes:
    row = {
        "orderID": f"{i:08x}-0000-0000-0000-000000000000",
        "symbol": "XBTUSD",
        "side": "Sell" if i % 2 else "Buy",
        "price": 112000.0 + i,
        "leavesQty": 1000 + i * 100,
    }
    return json.dumps({"table": "liquidation", "action": "insert", "data": [row]}).encode()


_FRAMES = {
    Venue.BINANCE: _binance,
    Venue.BINANCE_COINM: lambda i: _binance(i, "BTCUSD_PERP", str(1 + i)),
    Venue.BYBIT: _bybit,
    Venue.OKX: _okx,
    Venue.DERIBIT: _deribit,
    Venue.BITMEX: _bitmex,
}


class FakeVenue:
    def __init__(
        self, venue: Venue, frames: list[bytes], behaviour: Behaviour | None = None
    ) -> None:
        self.venue = venue
        self.frames = frames
        self.behaviour = behaviour or Behaviour()
        self.stats = Stats()
        self._server: Server | None = None
        self._clients: list[_Client] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._ping_s = self.behaviour.require_heartbeat_s

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def start(self) -> FakeVenue:
        binance = self.venue in (Venue.BINANCE, Venue.BINANCE_COINM)
        limit = self._ping_s if binance else None
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            ping_interval=limit / 3 if limit else None,  # Binance pings; we must pong in time
            ping_timeout=limit,
        )
        if self.behaviour.broadcast_interval_s is not None:
            self._spawn(self._broadcast())
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- one connection ---------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        self.stats.connections += 1
        client = _Client(self.stats.connections, ws)
        self.stats.paths.append(ws.request.path if ws.request else "")
        self.stats.subscriptions.append([])
        self._clients.append(client)
        if self.venue is Venue.BITMEX:
            await self._send(
                client,
                json.dumps({"info": "Welcome to the BitMEX Realtime API.", "version": "2.0.0"}),
            )
        tasks = [asyncio.create_task(self._watch_heartbeat(client))]
        if self.behaviour.broadcast_interval_s is None:
            tasks.append(asyncio.create_task(self._replay(client)))
        try:
            async for message in ws:
                client.last_rx = time.monotonic()
                await self._on_message(client, message)
        except Exception:
            pass
        finally:
            for task in tasks:
                task.cancel()
            if ws.latency > 0:
                self.stats.pongs_seen += 1
            self._clients.remove(client)

    async def _send(self, client: _Client, text: str | bytes) -> None:
        client.last_tx = time.monotonic()
        await client.ws.send(text.decode() if isinstance(text, bytes) else text)

    async def _replay(self, client: _Client) -> None:
        await client.subscribed.wait()
        first = client.number == 1
        for n, frame in enumerate(self.frames):
            if first and self.behaviour.drop_after is not None and n >= self.behaviour.drop_after:
                client.ws.transport.abort()  # the internet: no close frame
                return
            if (
                first
                and self.behaviour.silent_after is not None
                and n >= self.behaviour.silent_after
            ):
                return
            await self._send(client, frame)
            self.stats.frames_sent += 1
            await asyncio.sleep(self.behaviour.frame_interval_s)

    async def _broadcast(self) -> None:
        interval = self.behaviour.broadcast_interval_s or 0.01
        while not any(c.subscribed.is_set() for c in self._clients):
            await asyncio.sleep(0.005)
        for frame in self.frames:
            for client in list(self._clients):
                if client.subscribed.is_set():
                    with contextlib.suppress(Exception):
                        await self._send(client, frame)
            self.stats.frames_sent += 1
            await asyncio.sleep(interval)

    # --- the venue's side of the protocol ----------------------------------------------------

    async def _on_message(self, client: _Client, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode()
        if text == "ping" and self.venue in (Venue.OKX, Venue.BITMEX):
            self.stats.pings += 1
            await self._send(client, "pong")
            return
        request = json.loads(text)
        reply = _REPLIES[self.venue](self, client, request)
        for answer in reply:
            await self._send(client, json.dumps(answer))

    def _subscribed(self, client: _Client, topics: list[Any]) -> None:
        self.stats.subscriptions[client.number - 1].extend(topics)
        client.subscribed.set()

    async def _watch_heartbeat(self, client: _Client) -> None:
        """Closes the connection the way the venue does when the client's heartbeat lapses."""
        limit = self.behaviour.require_heartbeat_s
        if limit is None or self.venue in (Venue.BINANCE, Venue.BINANCE_COINM):
            return  # Binance: the websocket server's own ping timeout does it
        while True:
            await asyncio.sleep(limit / 10)
            now = time.monotonic()
            if self.venue is Venue.DERIBIT:
                lapsed = await self._deribit_heartbeat(client, now, limit)
            elif self.venue is Venue.BYBIT:
                lapsed = now - client.last_ping > limit
            else:  # OKX, BitMEX: the link must not be idle both ways
                lapsed = now - max(client.last_rx, client.last_tx) > limit
            if lapsed:
                self.stats.closed_for_heartbeat += 1
                await client.ws.close(4000, "heartbeat lapsed")
                return

    async def _deribit_heartbeat(self, client: _Client, now: float, limit: float) -> bool:
        if client.heartbeat_s is None:
            return False
        if client.test_sent_at is not None:
            return now - client.test_sent_at > limit
        if now - client.last_tx >= client.heartbeat_s:
            client.test_sent_at = now
            request = {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
            await self._send(client, json.dumps(request))
        return False


def _binance_reply(fake: FakeVenue, client: _Client, request: dict[str, Any]) -> list[Any]:
    if request.get("method") == "SUBSCRIBE":
        fake._subscribed(client, request["params"])
    return [{"result": None, "id": request.get("id")}]


def _bybit_reply(fake: FakeVenue, client: _Client, request: dict[str, Any]) -> list[Any]:
    op = request.get("op")
    if op == "ping":
        fake.stats.pings += 1
        client.last_ping = time.monotonic()
        return [{"success": True, "ret_msg": "pong", "conn_id": "fake", "req_id": "", "op": "ping"}]
    if op == "subscribe":
        fake._subscribed(client, request["args"])
        return [
            {
                "success": True,
                "ret_msg": "",
                "conn_id": "fake",
                "req_id": request.get("req_id", ""),
                "op": "subscribe",
            }
        ]
    return [{"success": False, "ret_msg": f"unknown op {op}", "conn_id": "fake", "op": op}]


def _okx_reply(fake: FakeVenue, client: _Client, request: dict[str, Any]) -> list[Any]:
    if request.get("op") != "subscribe":
        return [{"event": "error", "code": "60012", "msg": "Invalid request", "connId": "fake"}]
    fake._subscribed(client, request["args"])
    return [{"event": "subscribe", "arg": arg, "connId": "fake"} for arg in request["args"]]


def _deribit_reply(fake: FakeVenue, client: _Client, request: dict[str, Any]) -> list[Any]:
    method, rid = request.get("method"), request.get("id")
    if method == "public/set_heartbeat":
        client.heartbeat_s = float(request["params"]["interval"])
        return [{"jsonrpc": "2.0", "id": rid, "result": "ok"}]
    if method == "public/test":
        fake.stats.test_replies += 1
        client.test_sent_at = None
        return [{"jsonrpc": "2.0", "id": rid, "result": {"version": "1.2.26"}}]
    if method == "public/subscribe":
        channels = request["params"]["channels"]
        fake._subscribed(client, channels)
        return [{"jsonrpc": "2.0", "id": rid, "result": channels}]
    return [{"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "Method not found"}}]


def _bitmex_reply(fake: FakeVenue, client: _Client, request: dict[str, Any]) -> list[Any]:
    if request.get("op") != "subscribe":
        return [
            {
                "status": 400,
                "error": "Unknown or unsupported command",
                "meta": {},
                "request": request,
            }
        ]
    fake._subscribed(client, request["args"])
    return [{"success": True, "subscribe": arg, "request": request} for arg in request["args"]]


_REPLIES = {
    Venue.BINANCE: _binance_reply,
    Venue.BINANCE_COINM: _binance_reply,
    Venue.BYBIT: _bybit_reply,
    Venue.OKX: _okx_reply,
    Venue.DERIBIT: _deribit_reply,
    Venue.BITMEX: _bitmex_reply,
}
