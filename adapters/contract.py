"""What every API source adapter (Epic, athena, Google) offers the hub.

An adapter fetches pages and the hub stores each one in the message store before a worker
normalizes it, so every page can be replayed. A stored page is an *envelope*: the vendor's
body as it came, plus what the normalizer needs to read it on its own later (integration
name, what was asked, the integration's options such as working hours). Normalizers are pure
functions of the envelope bytes and the active mapping set.

Identifier systems are per integration, ``urn:harmony:<integration>:<kind>`` (see
``source_system``), so two Epic tenants never collide and any canonical record tells which
integration owns it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from canonical.errors import RejectedInput

ENVELOPE_VERSION = 1


def source_system(integration: str, kind: str) -> str:
    """The identifier system for one integration's ids of one kind (``Slot``, ``appointmentid``)."""
    return f"urn:harmony:{integration}:{kind}"


def integration_of(system: str) -> str | None:
    """The integration named in an identifier system made by ``source_system``."""
    parts = system.split(":")
    if len(parts) >= 4 and parts[0] == "urn" and parts[1] == "harmony":
        return parts[2]
    return None


@dataclass(frozen=True, slots=True)
class IntegrationConfig:
    """One configured source. ``credentials`` are decrypted: never log or return them."""

    name: str
    source_type: str
    base_url: str
    credentials: dict[str, Any] = field(default_factory=dict, repr=False)
    options: dict[str, Any] = field(default_factory=dict)


def require_credentials(config: IntegrationConfig, vendor: str, *keys: str) -> dict[str, Any]:
    """The integration's credentials, or a clear, permanent error naming what is missing."""
    missing = [key for key in keys if not config.credentials.get(key)]
    if missing:
        raise SourceError(
            f"integration {config.name!r} lacks {vendor} credentials: {', '.join(missing)}",
            retryable=False,
        )
    return config.credentials


@dataclass(frozen=True, slots=True)
class Envelope:
    integration: str
    source_type: str
    kind: str
    """What ``body`` is, in the adapter's words (``slot-bundle``, ``appointments-open`` ...)."""
    request: str
    """What was asked (method and URL); also the message's control id."""
    body: Any
    context: dict[str, Any]
    fetched_at: str

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "harmony_envelope": ENVELOPE_VERSION,
                "integration": self.integration,
                "source_type": self.source_type,
                "kind": self.kind,
                "request": self.request,
                "fetched_at": self.fetched_at,
                "context": self.context,
                "body": self.body,
            }
        )


def envelope(
    config: IntegrationConfig,
    kind: str,
    request: str,
    body: Any,
    context: dict[str, Any] | None = None,
) -> Envelope:
    """Wrap a fetched body; ``context`` defaults to the integration's options."""
    return Envelope(
        integration=config.name,
        source_type=config.source_type,
        kind=kind,
        request=request,
        body=body,
        context=dict(config.options if context is None else context),
        fetched_at=datetime.now(UTC).isoformat(),
    )


def read_envelope(raw: bytes) -> Envelope:
    """Parse stored bytes back; anything that is not an envelope is refused for good."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RejectedInput(f"stored page is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("harmony_envelope") != ENVELOPE_VERSION:
        raise RejectedInput("stored page is not a Harmony envelope (version 1)")
    try:
        return Envelope(
            integration=str(data["integration"]),
            source_type=str(data["source_type"]),
            kind=str(data["kind"]),
            request=str(data["request"]),
            body=data["body"],
            context=dict(data.get("context") or {}),
            fetched_at=str(data.get("fetched_at", "")),
        )
    except KeyError as exc:
        raise RejectedInput(f"envelope lacks {exc.args[0]!r}") from None


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """One page, ready for the message store; ``cursor`` is where a stopped sync resumes."""

    envelope: Envelope
    cursor: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BookingRequest:
    """A booking of one canonical free slot, as the owning source must be told."""

    slot_source_id: str
    """The owning source's id of the slot (the value of its primary identifier)."""
    slot: dict[str, Any]
    """The canonical Slot resource (FHIR R4 JSON, with every identifier)."""
    patient: dict[str, Any] | None = None
    """The canonical Patient resource, when the booking names one."""
    appointment_type: str | None = None
    reason: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class BookingResult:
    """The source's answer; ``page`` is stored and normalized like a synced page."""

    appointment_source_id: str
    page: FetchedPage


class SourceError(Exception):
    """The source failed or refused. ``retryable`` says whether trying later may help."""

    def __init__(self, message: str, *, retryable: bool = True, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class SlotUnavailable(SourceError):
    """The source says the slot is no longer free (booked elsewhere, removed)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message, retryable=False, status=status)


class SourceClient(Protocol):
    """A client for one integration. Blocking; the hub runs it in a worker thread."""

    def sync(self, cursor: dict[str, Any] | None) -> Iterator[FetchedPage]:
        """Pages changed since ``cursor`` (all, when None), resuming where a cursor says."""
        ...

    def book(self, request: BookingRequest) -> BookingResult: ...

    def cancel(self, appointment_source_id: str, reason: str | None) -> FetchedPage:
        """Cancel in the source; the page is its answer (normalized to a cancelled appointment)."""
        ...

    def close(self) -> None: ...
