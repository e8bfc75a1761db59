"""A local HTTP server (127.0.0.1) serving venue REST responses by path, for metadata and polls."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Response = tuple[int, bytes, dict[str, str]]
Route = bytes | Callable[[str], Response]


class FakeHttp:
    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.requests: list[str] = []
        self.down = False  # answer 503 to everything
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeHttp:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def respond(self, path: str) -> Response:
        self.requests.append(path)
        if self.down:
            return 503, b"unavailable", {}
        route = self.routes.get(path)
        if route is None:
            route = self.routes.get(path.split("?", 1)[0])
        if route is None:
            return 404, b'{"code":-1,"msg":"not found"}', {}
        if callable(route):
            return route(path)
        return 200, route, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body, headers = fake.respond(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
