"""The seam to storage: the listener acknowledges only what a sink has committed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from mllp_listener.header import MessageHeader


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why the listener refused a message; stored with it so an operator can see and replay it.

    `error_code` is from HL7 table 0357 (e.g. "200" unsupported message type).
    """

    ack_code: Literal["AR", "AE"]
    error_code: str
    text: str


@dataclass(frozen=True, slots=True)
class Received:
    """One inbound frame. `raw` is exactly the bytes between <VT> and <FS> (for an oversize
    message: its first `max_message_bytes`). `header` is None when no MSH could be read."""

    raw: bytes
    header: MessageHeader | None
    peer: str
    rejection: Rejection | None = None


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """`duplicate_ack` set means "seen before (same sender and MSH-10, same bytes): resend this
    ACK (unframed)" instead of the new one."""

    duplicate_ack: bytes | None = None


class MessageSink(Protocol):
    """Storage the listener writes through before acknowledging.

    `store` must return only once `received` is durably committed and raise otherwise; the
    listener then answers AE (or closes) and never AA. `ack` is the unframed ACK the listener
    intends to send (None when none will be sent), so a resend can be answered identically.
    Calls from different connections run concurrently; calls from one connection are started
    in arrival order and, unless the server's pipeline_depth > 1, never overlap.
    """

    async def store(self, received: Received, ack: bytes | None) -> StoreOutcome: ...
