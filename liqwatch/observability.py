"""One HTTP endpoint per service: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

Liveness says the process loop is turning; readiness says the service can do its job now
(connected to its broker/server). Each service passes its own checks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase

Check = Callable[[], tuple[bool, str]]

log = logging.getLogger(__name__)


M = TypeVar("M", bound=MetricWrapperBase)


class Children(Generic[M]):
    """A metric with one label, its children looked up once per label value.

    ``labels()`` checks and locks on every call (~2 µs), which adds up on a per-envelope path.
    """

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[str, M] = {}

    def __call__(self, value: str) -> M:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = self._metric.labels(value)
        return child


def always_ok() -> tuple[bool, str]:
    return True, "ok"


class HealthServer:
    """Serves metrics and health checks from a daemon thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str = "127.0.0.1",
        port: int = 0,
        live: Check = always_ok,
        ready: Check = always_ok,
    ) -> None:
        handler = _make_handler(registry, live, ready)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("metrics and health on port %d", self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _make_handler(
    registry: CollectorRegistry, live: Check, ready: Check
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path in ("/healthz", "/readyz"):
                ok, why = (live if self.path == "/healthz" else ready)()
                self._send(200 if ok else 503, why.encode(), "text/plain")
            else:
                self._send(404, b"not found", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would drown the logs

    return Handler
