"""What a scheduling operation refuses, and why; the API turns each into one HTTP status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scheduling.conflicts import Conflict


class SchedulingError(Exception):
    """Base of every refusal; ``str(exc)`` is meant for the person who asked."""


class NotFound(SchedulingError):
    """The physician, shift, roster or request does not exist (404)."""


class Forbidden(SchedulingError):
    """The caller may not act on this record: not theirs, or not their role (403)."""


class StaleVersion(SchedulingError):
    """If-Match named an older version than the stored one (412)."""


class InvalidInput(SchedulingError):
    """The request itself is wrong: unknown timezone, end before start ... (422)."""


class StateConflict(SchedulingError):
    """The record is not in a state that allows this (409): a published roster, a request
    already decided, a shift that is no longer open, a swap inside the lead time ..."""

    def __init__(self, message: str, rule: str = "state") -> None:
        super().__init__(message)
        self.rule = rule


class RuleConflict(SchedulingError):
    """The conflict checker refused the change (409); every conflict found is listed."""

    def __init__(self, conflicts: Sequence[Conflict]) -> None:
        self.conflicts = list(conflicts)
        super().__init__("; ".join(c.message for c in self.conflicts))


class BulkRefused(SchedulingError):
    """A bulk request where some items failed; nothing was written (all-or-nothing)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__(f"{len(errors)} of the items were refused; nothing was changed")
