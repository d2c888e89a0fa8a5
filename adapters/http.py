"""HTTP with the manners every vendor API expects: Retry-After, backoff, token refresh.

One policy for Epic and athena (Google's client brings its own transport and reuses
``retry_delay``). Errors that survive the retries become ``SourceError`` with the vendor's
own words, so the operator sees why.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from adapters.contract import SourceError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    """A Retry-After longer than this is not waited for: the sync fails and is retried later."""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_delay(attempt: int, policy: RetryPolicy, retry_after: float | None = None) -> float:
    """The wait before attempt ``attempt + 1``: the server's word, else jittered backoff."""
    if retry_after is not None:
        return retry_after
    ceiling = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def describe(response: httpx.Response) -> str:
    """The request and the vendor's error text, short enough for a log line."""
    body = response.text[:300].replace("\n", " ")
    return f"{response.request.method} {response.request.url} -> {response.status_code}: {body}"


@dataclass
class RetryingHttp:
    """An ``httpx.Client`` that retries what may pass and refreshes an expired token once."""

    client: httpx.Client
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    token: Callable[[bool], str] | None = None
    """Returns a bearer token; called with True to force a refresh after a 401."""
    sleep: Callable[[float], None] = time.sleep

    def request(
        self, method: str, url: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        """``idempotent`` (default: by method) allows retrying after a 5xx or a lost answer.

        A POST that may have reached the server (a booking) is not sent twice: the vendor may
        have done it before failing, and a second try would then see its own booking as a
        conflict. A 429, or a connection that never opened, is safe to retry for any method.
        """
        safe = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            headers = dict(kwargs.pop("headers", None) or {})
            if self.token is not None:
                headers["Authorization"] = f"Bearer {self.token(False)}"
            try:
                response = self.client.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError as exc:  # timeouts, refused connections, resets
                never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if not safe and not never_sent:
                    raise SourceError(
                        f"{method} {url}: {exc!r}; not retried, the server may have acted on it",
                        retryable=False,
                    ) from exc
                if attempt >= self.policy.max_attempts:
                    raise SourceError(f"{method} {url}: {exc!r} after {attempt} attempts") from exc
                delay = retry_delay(attempt, self.policy)
                log.info("%s %s failed (%r); retrying in %.2fs", method, url, exc, delay)
                kwargs["headers"] = headers
                self.sleep(delay)
                continue
            kwargs["headers"] = headers
            if response.status_code == 401 and self.token is not None and not refreshed:
                refreshed = True
                self.token(True)
                attempt -= 1
                continue
            if response.status_code not in RETRY_STATUSES:
                return response
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if response.status_code != 429 and not safe:
                raise SourceError(
                    f"{describe(response)} (not retried: the server may have acted on it)",
                    status=response.status_code,
                )
            if attempt >= self.policy.max_attempts or (wait or 0) > self.policy.max_delay:
                raise SourceError(
                    f"{describe(response)} (gave up after {attempt} attempts)",
                    status=response.status_code,
                )
            delay = retry_delay(attempt, self.policy, wait)
            log.info("%s; retrying in %.2fs", describe(response), delay)
            self.sleep(delay)
