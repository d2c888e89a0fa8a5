"""An httplib2-shaped transport for googleapiclient that retries the way Google asks.

googleapiclient's own ``num_retries`` sleeps its own backoff and ignores Retry-After, so it
stays at 0 and this wrapper retries instead: 429, 5xx and 403 rate-limit answers honour
Retry-After (``adapters.http.retry_after_seconds``), otherwise the shared jittered backoff.
An answer that still fails is returned as it is, so the client reads Google's error body.
Token refresh on 401 is ``google_auth_httplib2.AuthorizedHttp``'s job, underneath.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httplib2

from adapters.contract import SourceError
from adapters.google.errors import error_parts
from adapters.http import RETRY_STATUSES, RetryPolicy, retry_after_seconds, retry_delay

log = logging.getLogger(__name__)

RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


def creates_event(uri: str, method: str) -> bool:
    """``events.insert``: sent twice it books twice, so it is not retried once it may have
    reached Google (other POSTs, freeBusy and watch, are safe to repeat)."""
    return method.upper() == "POST" and uri.split("?", 1)[0].endswith("/events")


def should_retry(status: int, content: bytes, *, safe: bool = True) -> bool:
    if status == 429:
        return True
    if status in RETRY_STATUSES:
        return safe
    # Google says "slow down" with 403 too, telling it apart from permission errors by reason.
    return status == 403 and error_parts(content)[1] in RATE_LIMIT_REASONS


class RetryingTransport:
    """Wraps an AuthorizedHttp; one request at a time, as httplib2 is not thread-safe."""

    def __init__(
        self,
        http: Any,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = http
        self.policy = policy
        self.sleep = sleep
        self.waits: list[float] = []
        """Every delay slept, for operators' logs and tests."""
        self._lock = threading.Lock()

    @property
    def credentials(self) -> Any:
        return getattr(self.http, "credentials", None)

    def request(
        self, uri: str, method: str = "GET", body: Any = None, headers: Any = None, **kwargs: Any
    ) -> tuple[httplib2.Response, bytes]:
        with self._lock:
            return self._request(uri, method, body, headers, **kwargs)

    def _request(
        self, uri: str, method: str, body: Any, headers: Any, **kwargs: Any
    ) -> tuple[httplib2.Response, bytes]:
        safe = not creates_event(uri, method)
        attempt = 0
        while True:
            attempt += 1
            try:
                response, content = self.http.request(
                    uri, method, body=body, headers=dict(headers or {}), **kwargs
                )
            except (OSError, httplib2.HttpLib2Error) as exc:  # refused, reset, timed out
                if not safe and not isinstance(exc, ConnectionRefusedError):
                    raise SourceError(
                        f"{method} {uri}: {exc!r}; not retried, Google may have created it",
                        retryable=False,
                    ) from exc
                if attempt >= self.policy.max_attempts:
                    raise SourceError(f"{method} {uri}: {exc!r} after {attempt} attempts") from exc
                self._wait(retry_delay(attempt, self.policy), f"{method} {uri}: {exc!r}")
                continue
            if not should_retry(response.status, content, safe=safe):
                return response, content
            wait = retry_after_seconds(response.get("retry-after"))
            if attempt >= self.policy.max_attempts or (wait or 0) > self.policy.max_delay:
                return response, content
            _, reason, message = error_parts(content)
            self._wait(
                retry_delay(attempt, self.policy, wait),
                f"{method} {uri} -> {response.status} {reason}: {message}",
            )

    def _wait(self, delay: float, why: str) -> None:
        log.info("%s; retrying in %.2fs", why, delay)
        self.waits.append(delay)
        self.sleep(delay)

    def close(self) -> None:
        inner = getattr(self.http, "http", self.http)
        for connection in list(getattr(inner, "connections", {}).values()):
            connection.close()
        getattr(inner, "connections", {}).clear()


__all__ = ["RetryingTransport", "should_retry"]
