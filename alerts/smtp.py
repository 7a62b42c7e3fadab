"""Sending one e-mail over SMTP (stdlib smtplib): STARTTLS, implicit TLS or plain, optional login.

The password comes from the settings (environment or config file, never a flag) and is never logged: it is not in
any repr, message or exception text made here.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage

SECURITY_MODES = ("starttls", "tls", "none")


class DeliveryError(Exception):
    """A message could not be delivered. `permanent`: retrying cannot help (the server refused it for good)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None
    port: int = 587
    security: str = "starttls"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str | None = None
    ca_file: str | None = None
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings) -> SmtpSettings:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            user=settings.smtp_user,
            password=settings.smtp_password,
            sender=settings.smtp_from,
            ca_file=settings.smtp_ca_file,
            timeout=settings.smtp_timeout_seconds,
        )

    @property
    def from_address(self) -> str:
        return self.sender or f"callscope@{socket.getfqdn() or 'localhost'}"

    @property
    def domain(self) -> str:
        return self.from_address.rsplit("@", 1)[-1].strip("> ") or "callscope"


def _tls_context(smtp: SmtpSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=smtp.ca_file)


def send(smtp: SmtpSettings, msg: EmailMessage, on_accepted: Callable[[str | None], None] | None = None) -> str | None:
    """Send `msg`; returns a note when some (not all) recipients were refused. Raises DeliveryError.

    `on_accepted(note)` runs the moment the server has accepted the message (its answer to DATA), before the
    polite QUIT: the caller records the delivery as early as it can be known."""
    if not smtp.host:
        raise DeliveryError("smtp_host is not set: configure the SMTP server (smtp_host, smtp_port, ...)")
    where = f"{smtp.host}:{smtp.port}"
    try:
        if smtp.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout, context=_tls_context(smtp)
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        with client:
            client.ehlo()
            if smtp.security == "starttls":
                client.starttls(context=_tls_context(smtp))
                client.ehlo()
            if smtp.user:
                client.login(smtp.user, smtp.password or "")
            refused = client.send_message(msg)
            note = f"refused by {where}: {_codes(refused)}" if refused else None
            if on_accepted is not None:
                on_accepted(note)
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"{where} refused every recipient: {_codes(exc.recipients)}", permanent=True) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"{where} refused the login of {smtp.user!r}: {exc.smtp_code} {_text(exc)}") from None
    except smtplib.SMTPResponseException as exc:
        # 5xx answers to the message itself are final (RFC 5321); 4xx are "try again later".
        permanent = 500 <= exc.smtp_code < 600 and isinstance(exc, smtplib.SMTPDataError | smtplib.SMTPSenderRefused)
        raise DeliveryError(f"{where} answered {exc.smtp_code} {_text(exc)}", permanent=permanent) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"cannot deliver through {where}: {type(exc).__name__}: {exc}") from None
    return note


def _text(exc: smtplib.SMTPResponseException) -> str:
    raw = exc.smtp_error
    return (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw))[:300]


def _codes(recipients: dict) -> str:
    return ", ".join(
        f"{addr} ({code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg})"
        for addr, (code, msg) in recipients.items()
    )[:500]
