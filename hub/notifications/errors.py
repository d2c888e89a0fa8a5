"""How a delivery failed, in the terms the outbox acts on: retry, give up, or forget the address."""

from __future__ import annotations


class DeliveryError(Exception):
    """A delivery that did not happen.

    ``permanent``: trying again cannot help (a refused address, a malformed message), so the
    delivery is parked at once. ``retry_after``: the server asked us to wait this long.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class TargetGone(DeliveryError):
    """The address no longer exists (an FCM token the app unregistered): drop it, do not retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)
