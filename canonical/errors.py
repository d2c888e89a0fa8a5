"""Errors that mean "this input will fail the same way until a person fixes something".

The hub parks such a message at once instead of retrying it with backoff; anything else is
treated as transient and retried.
"""

from __future__ import annotations


class RejectedInput(Exception):
    """Input that cannot become canonical records as it stands (bad data or missing mapping)."""


class InvalidResource(RejectedInput):
    """A resource failed FHIR R4 validation or our code-list checks."""


class UnresolvedReference(RejectedInput):
    """A conditional reference matched no record."""


class IdentifierConflict(RejectedInput):
    """A record's identifiers name two different stored records; a person must merge them."""


class VersionConflict(Exception):
    """The stored version is not the one the caller based its change on (If-Match)."""


class NothingToStore(RejectedInput):
    """Well-formed input that carries no canonical records (an ACK, an event we ignore).

    The hub marks such a message ``filtered``, with this reason, instead of parking it.
    """
