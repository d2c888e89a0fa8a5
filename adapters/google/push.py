"""Google push notifications and watch channels, read without any network.

A push is a POST with headers and no body: it only says "this calendar changed", so the hub
answers 200 quickly and syncs the calendar (``sync`` is the handshake sent when a channel
opens; ``exists`` and ``not_exists`` mean changes). The channel token we chose when watching
comes back in every notification; one that does not match is refused.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from canonical.errors import RejectedInput

RESOURCE_STATES = frozenset({"sync", "exists", "not_exists"})


class PushRejected(RejectedInput):
    """A notification that is not a Google push for us (bad headers)."""


class PushTokenMismatch(PushRejected):
    """X-Goog-Channel-Token is missing or not ours: someone else's POST, answer 4xx."""


@dataclass(frozen=True, slots=True)
class PushNotice:
    channel_id: str
    resource_id: str
    resource_uri: str
    resource_state: str
    message_number: int
    channel_expiration: str | None

    @property
    def needs_sync(self) -> bool:
        """``sync`` only opens the channel; the other states mean the calendar changed."""
        return self.resource_state != "sync"


@dataclass(frozen=True, slots=True)
class WatchChannel:
    id: str
    resource_id: str
    resource_uri: str
    token: str | None
    expiration: datetime | None


def read_push(headers: Mapping[str, str], expected_token: str) -> PushNotice:
    """Check and read one notification's headers (any header-name case)."""
    folded = {str(k).lower(): str(v).strip() for k, v in headers.items()}
    token = folded.get("x-goog-channel-token")
    if token is None or not hmac.compare_digest(token.encode(), expected_token.encode()):
        raise PushTokenMismatch("X-Goog-Channel-Token does not match the channel's token")
    missing = [
        name
        for name in ("x-goog-channel-id", "x-goog-resource-id", "x-goog-resource-state")
        if not folded.get(name)
    ]
    if missing:
        raise PushRejected(f"push notification lacks {', '.join(missing)}")
    state = folded["x-goog-resource-state"]
    if state not in RESOURCE_STATES:
        raise PushRejected(f"X-Goog-Resource-State {state!r} is not sync, exists or not_exists")
    number_text = folded.get("x-goog-message-number", "")
    if not number_text.isdigit():
        raise PushRejected(f"X-Goog-Message-Number {number_text!r} is not a number")
    return PushNotice(
        channel_id=folded["x-goog-channel-id"],
        resource_id=folded["x-goog-resource-id"],
        resource_uri=folded.get("x-goog-resource-uri", ""),
        resource_state=state,
        message_number=int(number_text),
        channel_expiration=folded.get("x-goog-channel-expiration"),
    )


def expiration_of(value: Any) -> datetime | None:
    """Channel expiration: milliseconds since the epoch, as a JSON number or an int64 string
    (the discovery document types it as a string, Google's guide shows a number)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    if isinstance(value, str):
        try:
            return parsedate_to_datetime(value).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    raise PushRejected(f"channel expiration {value!r} is not milliseconds since the epoch")


def read_channel(body: Any) -> WatchChannel:
    """An events.watch answer (``api#channel``)."""
    if not isinstance(body, dict) or body.get("kind") != "api#channel":
        raise PushRejected("events.watch answered something other than an api#channel")
    for key in ("id", "resourceId"):
        if not body.get(key):
            raise PushRejected(f"api#channel lacks {key}")
    return WatchChannel(
        id=str(body["id"]),
        resource_id=str(body["resourceId"]),
        resource_uri=str(body.get("resourceUri") or ""),
        token=body.get("token"),
        expiration=expiration_of(body.get("expiration")),
    )
