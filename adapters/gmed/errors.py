"""Why a GMED message cannot be ingested as it stands; every one parks or filters at once.

All are ``RejectedInput``: replaying the same bytes fails the same way until a person fixes the
sender or the mapping set, so the hub must not retry them with backoff.
"""

from __future__ import annotations

from canonical.errors import NothingToStore, RejectedInput


class HL7ParseError(RejectedInput):
    """The bytes are not a readable HL7 v2 message (no MSH, bad separators, bad charset ...)."""


class InvalidTime(RejectedInput):
    """A TS/DTM value that is not a valid HL7 date/time."""


class InvalidDuration(RejectedInput):
    """A duration whose amount or unit we cannot turn into a length of time."""


class NotSchedulingMessage(NothingToStore):
    """A well-formed message Harmony does not ingest (ACK, ADT events we ignore, ORU ...).

    The hub marks these filtered rather than failed.
    """


class IncompleteMessage(RejectedInput):
    """A message missing what its records need (an appointment id, a booked time, a patient id)."""
