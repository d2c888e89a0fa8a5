"""Access tokens shared by every request of one integration, refreshed before they expire.

Many threads may ask at once when a token runs out; one of them fetches, the others wait
for its result instead of each asking the vendor (which rate-limits token endpoints too).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float
    """``time.monotonic()`` seconds."""


class TokenCache:
    def __init__(
        self,
        fetch: Callable[[], tuple[str, float]],
        *,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``fetch`` returns (access token, lifetime in seconds)."""
        self._fetch = fetch
        self._margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = None
        self.fetches = 0

    def get(self, force: bool = False) -> str:
        """A token valid for at least the margin; ``force`` replaces one the server refused."""
        seen = self._token
        if not force and seen is not None and self._fresh(seen):
            return seen.value
        with self._lock:
            current = self._token
            # Another thread refreshed while we waited: use its token.
            if current is not None and current is not seen and self._fresh(current):
                return current.value
            if not force and current is not None and self._fresh(current):
                return current.value
            value, lifetime = self._fetch()
            self.fetches += 1
            self._token = Token(value, self._clock() + lifetime)
            return value

    def _fresh(self, token: Token) -> bool:
        return token.expires_at - self._clock() > self._margin
