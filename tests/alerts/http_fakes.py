"""Local HTTP servers that record requests, and a ``requests`` transport that reaches them.

Telegram's and Discord's hosts cannot be reached from here. ``intercept`` mounts a transport
adapter on every ``requests`` session (Apprise calls ``requests.post``, which makes a new
session each time) that sends requests for those hosts, as real HTTP, to a local recording
server instead; every other host goes out unchanged.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter


@dataclass
class Recorded:
    method: str
    path: str  # path and query as received
    headers: dict[str, str]
    body: bytes
    original_url: str = ""  # the URL Apprise asked for, before interception

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, tuple[str | None, str | None, bytes]]:
        """multipart/form-data parts: name -> (filename, content type, payload bytes)."""
        ctype = self.headers.get("Content-Type", "")
        assert ctype.startswith("multipart/form-data"), ctype
        raw = f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode() + self.body
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
        parts: dict[str, tuple[str | None, str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            assert isinstance(name, str) and isinstance(payload, bytes)
            ctype_part = part.get("Content-Type")
            parts[name] = (part.get_filename(), str(ctype_part) if ctype_part else None, payload)
        return parts


Responder = Callable[[Recorded], tuple[int, dict[str, str], bytes]]


def ok_json(_: Recorded) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, b'{"ok": true}'


@dataclass
class RecordingServer:
    """ThreadingHTTPServer on 127.0.0.1:<free port> keeping every request."""

    responder: Responder = ok_json
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RecordingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever for a loop never started
            self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.requests) >= count, timeout)
            assert ok, f"expected {count} requests, got {len(self.requests)}"
            return list(self.requests)

    def _record(self, request: Recorded) -> tuple[int, dict[str, str], bytes]:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
        return self.responder(request)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                request = Recorded(
                    method=self.command,
                    path=self.path,
                    headers={k: v for k, v in self.headers.items()},
                    body=body,
                    original_url=self.headers.get("X-Original-Url", ""),
                )
                status, headers, payload = server._record(request)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


class ForwardingAdapter(HTTPAdapter):
    """Sends requests for one real host to a local server, over real HTTP."""

    def __init__(self, local_base: str) -> None:
        super().__init__()
        self._local = urlsplit(local_base)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        original = str(request.url)
        parts = urlsplit(original)
        request.url = urlunsplit(
            (self._local.scheme, self._local.netloc, parts.path, parts.query, "")
        )
        request.headers["X-Original-Url"] = original
        kwargs["verify"] = True  # plain HTTP to 127.0.0.1: nothing to verify
        return super().send(request, **kwargs)


@contextlib.contextmanager
def intercept(hosts: dict[str, RecordingServer]) -> Iterator[None]:
    """Route https://<host>/… for each given host to its recording server."""
    adapters = {host: ForwardingAdapter(server.base) for host, server in hosts.items()}
    original = requests.Session.get_adapter

    def get_adapter(self: requests.Session, url: str) -> Any:
        host = urlsplit(url).hostname or ""
        if host in adapters:
            return adapters[host]
        return original(self, url)

    requests.Session.get_adapter = get_adapter  # type: ignore[method-assign]
    try:
        yield
    finally:
        requests.Session.get_adapter = original  # type: ignore[method-assign]
        for adapter in adapters.values():
            adapter.close()
