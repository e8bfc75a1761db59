"""A real SMTP server (aiosmtpd) on 127.0.0.1 for delivery tests.

``smtp_server`` (per test) accepts any AUTH LOGIN/PLAIN credentials over plain SMTP (Apprise's
``mailto://user:pass@127.0.0.1:PORT?mode=insecure``), parses every message into an
``email.message.EmailMessage`` and lets a test wait for N of them. ``stop()`` / ``start()``
take it down and bring it back on the same port, for outage tests.
"""

from __future__ import annotations

import email.policy
import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

HOST = "127.0.0.1"


class _Collector:
    """aiosmtpd handler: parse and keep every message, wake waiters."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = BytesParser(policy=email.policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        self._server._received(message, envelope, session)
        return "250 Message accepted for delivery"


class _Session(Session):
    """aiosmtpd 1.4 itself sets the deprecated ``login_data`` after AUTH, which warns (an error
    under -W error, inside the server thread); keep the value without the warning."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _SMTP(SMTP):
    def _create_session(self) -> Session:
        return _Session(self.loop)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _SMTP(self.handler, **self.SMTP_kwargs)


def _accept_any(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    return AuthResult(success=True, handled=False, auth_data=auth_data)


class SmtpServer:
    def __init__(self, port: int = 0) -> None:
        self.host = HOST
        self.port = port or _free_port()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []  # (mail from, rcpt tos)
        self.logins: list[str] = []  # authenticated user names seen
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> SmtpServer:
        if self._controller is None:
            controller = _Controller(
                _Collector(self),
                hostname=self.host,
                port=self.port,
                auth_require_tls=False,
                authenticator=_accept_any,
                ready_timeout=10.0,
            )
            controller.start()
            self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def url(self, user: str, password: str, to: str = "trader@example.com") -> str:
        """An Apprise mailto:// URL for this server (plain SMTP, AUTH with user/password)."""
        return (
            f"mailto://{user}:{password}@{self.host}:{self.port}"
            f"?mode=insecure&from=liqwatch@example.com&to={to}"
        )

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Block until at least ``count`` messages arrived; fail the test otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(
                        f"SMTP server got {len(self.messages)} messages, expected {count} "
                        f"within {timeout:.0f} s",
                        pytrace=False,
                    )
                self._cond.wait(left)
            return list(self.messages)

    def _received(self, message: EmailMessage, envelope: Envelope, session: Session) -> None:
        with self._cond:
            self.messages.append(message)
            self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
            login = getattr(session.auth_data, "login", None)
            if login is not None:
                self.logins.append(login.decode() if isinstance(login, bytes) else str(login))
            self._cond.notify_all()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A running SMTP server on a free 127.0.0.1 port; stopped after the test."""
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()
