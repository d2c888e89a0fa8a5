"""Email over SMTP with the standard library: plain, STARTTLS or implicit TLS.

One connection per message keeps failure handling simple (a server that went away between
two messages costs nothing); notification volumes are small. SMTP's own reply classes decide
what happens next: 4xx and a server that cannot be reached are retried later, 5xx is final.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from hub.notifications.errors import DeliveryError


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 25
    sender: str = "harmony@localhost"
    tls: str = "none"
    """``none``, ``starttls`` (upgrade on the plain port) or ``implicit`` (SMTPS, port 465)."""
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0
    ssl_context: ssl.SSLContext | None = None
    """Trust to use for TLS; None: the system's default certificate store."""


class EmailSender:
    """Sends one notification email; raises ``DeliveryError`` saying whether to retry."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def build(self, to: str, subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=self.config.sender.rpartition("@")[2] or None)
        message.set_content(body)
        return message

    def send(self, to: str, subject: str, body: str) -> None:
        message = self.build(to, subject, body)
        try:
            with self._connect() as smtp:
                if self.config.username:
                    smtp.login(self.config.username, self.config.password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"SMTP refused {to}: {exc.recipients}", permanent=all(c >= 500 for c in codes)
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raw = exc.smtp_error
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            raise DeliveryError(
                f"SMTP {exc.smtp_code}: {text}", permanent=exc.smtp_code >= 500
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout, TLS
            raise DeliveryError(f"SMTP {self.config.host}:{self.config.port}: {exc!r}") from exc

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        context = cfg.ssl_context or ssl.create_default_context()
        if cfg.tls == "implicit":
            return smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=context)
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        if cfg.tls == "starttls":
            try:
                smtp.starttls(context=context)
            except BaseException:
                smtp.close()
                raise
        return smtp
