"""Real parts for notification tests: an SMTP server (aiosmtpd) that keeps what it received, and an HTTP webhook
receiver that answers with a scripted sequence of status codes and keeps every request."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.helpers import free_port


def notify_toml(webhook_url: str, *, group_interval: str = "2s", extra: str = "") -> str:
    """callscope.toml for a server that notifies fast: plain SMTP, one receiver "oncall" with an e-mail address and
    the webhook at `webhook_url`/hook, alerts grouped by rule and service; `extra`: more top-level settings."""
    return f"""
smtp_security = "none"
smtp_from = "callscope@example.org"
dashboard_url = "http://dash.example"
notify_interval_seconds = 0.2
notify_retry_seconds = 0.3
notify_retry_max_seconds = 1
ingest_workers = 0
{extra}

[alerts.route]
receiver = "oncall"
group_by = ["alertname", "service"]
group_wait = "1s"
group_interval = "{group_interval}"
repeat_interval = "4h"

[[alerts.receivers]]
name = "oncall"
email_configs = [{{ to = ["oncall@example.com"] }}]
webhook_configs = [{{ url = "{webhook_url}/hook" }}]
"""


def wait_until(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(msg)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


class StallingInbox(_Inbox):
    """An inbox that holds the first message's DATA unanswered until `release` is set, then accepts it only if the
    client is still connected (as a server that had not committed the message when the client vanished): a
    sender can be killed at a known point mid-send, before any server accepted the message."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = threading.Event()  # the first message's DATA has arrived and is being held
        self.release = threading.Event()
        self.dropped = 0  # held messages whose client was gone when released

    async def handle_DATA(self, server, session, envelope) -> str:
        if not self.stalled.is_set():
            self.stalled.set()
            try:
                while not self.release.is_set():
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.2)  # the kernel has told the server about a killed client by now
            except asyncio.CancelledError:  # aiosmtpd ends the session's handler when its client is gone
                self.dropped += 1
                raise
            if server.transport is None or server.transport.is_closing():
                self.dropped += 1
                return "451 client gone"
        return await super().handle_DATA(server, session, envelope)


@dataclass
class SmtpSink:
    """A real SMTP server on 127.0.0.1. `stop()` and `start()` again on the same port simulate an outage."""

    port: int = field(default_factory=free_port)
    user: str | None = None
    password: str | None = None
    tls_context: ssl.SSLContext | None = None  # STARTTLS offered (and required) when set
    implicit_tls: ssl.SSLContext | None = None  # TLS from the first byte
    inbox: _Inbox = field(default_factory=_Inbox)
    logins: list[str] = field(default_factory=list)
    _controller: Controller | None = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.user
            and auth_data.password.decode() == self.password
        )
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    def start(self) -> SmtpSink:
        kwargs: dict[str, Any] = {}
        if self.user:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                # aiosmtpd cannot see implicit TLS (it is the transport's), so only STARTTLS can be required
                auth_require_tls=self.tls_context is not None,
            )
        if self.tls_context is not None:
            kwargs.update(tls_context=self.tls_context, require_starttls=True)
        if self.implicit_tls is not None:
            kwargs.update(ssl_context=self.implicit_tls, server_hostname="localhost")
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        with self.inbox.lock:
            return list(self.inbox.messages)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[EmailMessage]:
        wait_until(lambda: len(self.messages) >= count, timeout, f"{count} e-mail(s), got {len(self.messages)}")
        return self.messages


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for "localhost" made by the openssl command (no Python crypto dependency)."""
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@dataclass
class Hook:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int


class WebhookReceiver:
    """A real HTTP server; the n-th POST gets statuses[n] (the last one repeats)."""

    def __init__(self, statuses: Sequence[int] = (200,)) -> None:
        self.statuses = list(statuses)
        self.requests: list[Hook] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    n = len(receiver.requests)
                    status = receiver.statuses[min(n, len(receiver.statuses) - 1)]
                    receiver.requests.append(
                        Hook(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw), status)
                    )
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"receiver failed on purpose")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def delivered(self) -> list[Hook]:
        with self.lock:
            return [r for r in self.requests if r.status < 300]

    def all(self) -> list[Hook]:
        with self.lock:
            return list(self.requests)


def text_part(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None, "no text/plain part"
    return part.get_content()


def html_part(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html",))
    assert part is not None, "no text/html part"
    return part.get_content()


def toml_value(value: Any) -> str:
    return json.dumps(value)  # JSON strings, numbers, booleans and arrays of them are valid TOML
