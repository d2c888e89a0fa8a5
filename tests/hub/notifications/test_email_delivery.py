"""Email through a real SMTP server (aiosmtpd): down then up, refusals, parking, STARTTLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, select

from adapters.sandbox_server import free_port
from hub.notifications import outbox
from hub.notifications.deliverer import Deliverer
from hub.notifications.dispatcher import Dispatcher
from hub.notifications.email import EmailSender, SmtpConfig
from hub.notifications.outbox import Channels, OutboxPolicy
from hub.notifications.service import NotificationService
from hub.notifications.tables import deliveries
from hub.settings import Settings
from tests.hub.notifications.world import World


class Mailbox:
    """An aiosmtpd handler that keeps what it receives and refuses ``nobody@`` addresses."""

    def __init__(self) -> None:
        self.received: list[Any] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 <nobody@example.org>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def world(engine: Engine) -> World:
    return World(engine)


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


def smtp_server(mailbox: Mailbox, port: int, **kw: Any) -> Controller:
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kw)
    controller.start()
    return controller


@pytest.fixture
def server(mailbox: Mailbox, port: int) -> Iterator[Controller]:
    controller = smtp_server(mailbox, port)
    yield controller
    controller.stop()


def _delivery(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(deliveries)).one()


def _publish_to(world: World, email: str) -> None:
    doctor = world.doctor("Ann Ames", email=email)
    world.event("publish", [], [doctor], actor="admin1")
    Dispatcher(world.engine, Channels(email=True)).run_once()


def _until(deliverer: Deliverer, done: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "delivery did not finish in time"
        deliverer.run_once()
        time.sleep(0.05)


POLICY = OutboxPolicy(max_attempts=5, base_seconds=0.2, max_seconds=0.5)


def test_smtp_down_is_retried_and_delivered_when_it_is_back(
    world: World, mailbox: Mailbox, port: int
) -> None:
    _publish_to(world, "ann@example.org")
    config = SmtpConfig(host="127.0.0.1", port=port, sender="roster@harmony.test", timeout=2)
    deliverer = Deliverer(world.engine, POLICY, email=EmailSender(config))

    assert deliverer.run_once() == 1
    waiting = _delivery(world.engine)
    assert waiting.status == "retrying" and waiting.attempts == 1
    assert "127.0.0.1" in waiting.last_error and "refused" in waiting.last_error.lower()
    assert waiting.next_attempt_at is not None
    assert deliverer.run_once() == 0  # not due yet: backoff holds it

    controller = smtp_server(mailbox, port)
    try:
        _until(deliverer, lambda: _delivery(world.engine).status == "sent")
    finally:
        controller.stop()
    sent = _delivery(world.engine)
    assert sent.attempts == 2 and sent.finished_at is not None
    [envelope] = mailbox.received
    assert envelope.mail_from == "roster@harmony.test"
    assert envelope.rcpt_tos == ["ann@example.org"]
    message = message_from_bytes(envelope.content)
    assert message["Subject"] == "Roster published" and message["Message-ID"]
    assert "Roster March (01 Mar to 31 Mar 2030) is published." in message.get_payload()


def test_a_delivery_that_keeps_failing_is_parked_visible_and_can_be_replayed(
    world: World, mailbox: Mailbox, port: int
) -> None:
    _publish_to(world, "ann@example.org")
    policy = OutboxPolicy(max_attempts=2, base_seconds=0.05, max_seconds=0.05)
    config = SmtpConfig(host="127.0.0.1", port=port, timeout=2)
    deliverer = Deliverer(world.engine, policy, email=EmailSender(config))
    _until(deliverer, lambda: _delivery(world.engine).status == "parked")

    [parked] = outbox.list_deliveries(world.engine, status="parked")
    assert parked["attempts"] == 2 and parked["channel"] == "email"
    assert parked["last_error"] and parked["next_attempt_at"] is None
    assert outbox.delivery_counts(world.engine) == {"parked": 1}
    assert deliverer.run_once() == 0  # parked stays parked until a person acts

    controller = smtp_server(mailbox, port)
    try:
        assert outbox.retry_now(world.engine, [parked["id"]]) == [parked["id"]]
        _until(deliverer, lambda: _delivery(world.engine).status == "sent")
    finally:
        controller.stop()
    assert len(mailbox.received) == 1


def test_a_refused_recipient_is_parked_at_once(
    world: World, mailbox: Mailbox, port: int, server: Controller
) -> None:
    _publish_to(world, "nobody@example.org")
    config = SmtpConfig(host="127.0.0.1", port=port, timeout=2)
    Deliverer(world.engine, POLICY, email=EmailSender(config)).run_once()
    parked = _delivery(world.engine)
    assert parked.status == "parked" and parked.attempts == 1
    assert "550" in parked.last_error and "Recipient address rejected" in parked.last_error
    assert mailbox.received == []


def test_starttls_with_a_trusted_certificate(
    world: World, mailbox: Mailbox, port: int, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    controller = smtp_server(mailbox, port, tls_context=server_tls, require_starttls=True)
    try:
        _publish_to(world, "ann@example.org")
        trust = ssl.create_default_context(cafile=str(cert))
        plain = EmailSender(SmtpConfig(host="127.0.0.1", port=port, timeout=2))
        Deliverer(world.engine, POLICY, email=plain).run_once()
        refused = _delivery(world.engine)
        # 530: a 5xx reply is final for this attempt; fixing the config means a replay
        assert refused.status == "parked" and "530" in refused.last_error
        assert "STARTTLS" in refused.last_error
        outbox.retry_now(world.engine, [refused.id])
        tls = EmailSender(
            SmtpConfig(host="127.0.0.1", port=port, tls="starttls", ssl_context=trust, timeout=2)
        )
        _until(
            Deliverer(world.engine, POLICY, email=tls),
            lambda: _delivery(world.engine).status == "sent",
        )
    finally:
        controller.stop()
    assert [e.rcpt_tos for e in mailbox.received] == [["ann@example.org"]]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_the_service_built_from_settings_mails_a_new_roster_event(
    world: World, mailbox: Mailbox, port: int, server: Controller
) -> None:
    settings = Settings(
        database_url=world.engine.url.render_as_string(hide_password=False),
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_sender="roster@harmony.test",
        notification_poll_seconds=0.1,
    )
    ann = world.doctor("Ann Ames", email="ann@example.org")
    service = NotificationService(world.engine, settings).start()
    try:
        world.event("publish", [], [ann], actor="admin1")
        deadline = time.monotonic() + 5
        while not mailbox.received:
            assert time.monotonic() < deadline, "no mail arrived"
            time.sleep(0.05)
    finally:
        service.stop()
    assert mailbox.received[0].rcpt_tos == ["ann@example.org"]
    assert _delivery(world.engine).status == "sent"
