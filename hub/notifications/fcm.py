"""Push through Firebase Cloud Messaging's HTTP v1 API with a service account.

Google's service-account flow: we sign a JWT (RS256, the key id of the account's key) saying
who we are and which scope we want, trade it at the account's ``token_uri`` for an access
token (cached until shortly before it expires), then ``POST .../messages:send``. One send is
one attempt: a 429 or 5xx becomes a ``DeliveryError`` carrying Retry-After, and the outbox
schedules the next try, so no thread sleeps through a quota window. UNREGISTERED tokens
(404, or FCM's errorCode) are gone for good: ``TargetGone`` tells the outbox to forget them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

from adapters.contract import SourceError
from adapters.http import RetryingHttp, RetryPolicy, retry_after_seconds
from adapters.oauth import TokenCache
from hub.notifications.errors import DeliveryError, TargetGone

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_ENDPOINT = "https://fcm.googleapis.com"
ASSERTION_LIFETIME = 3600
"""Google's ceiling for a service-account assertion."""
GONE_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """The fields of a Google service-account key file that the token flow needs."""

    client_email: str
    private_key: str
    private_key_id: str
    token_uri: str
    project_id: str | None = None

    @classmethod
    def from_json(cls, info: Mapping[str, Any]) -> ServiceAccount:
        missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
        if missing:
            raise ValueError(f"service account credentials lack {', '.join(missing)}")
        return cls(
            client_email=str(info["client_email"]),
            private_key=str(info["private_key"]),
            private_key_id=str(info.get("private_key_id") or ""),
            token_uri=str(info["token_uri"]),
            project_id=info.get("project_id"),
        )

    @classmethod
    def from_file(cls, path: Path) -> ServiceAccount:
        return cls.from_json(json.loads(path.read_text()))


def service_account_assertion(account: ServiceAccount, *, now: float | None = None) -> str:
    """The signed JWT Google's token endpoint trades for an access token."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": account.client_email,
        "sub": account.client_email,
        "scope": SCOPE,
        "aud": account.token_uri,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    header = {"alg": "RS256", "typ": "JWT"}
    if account.private_key_id:
        header["kid"] = account.private_key_id
    key = RSAKey.import_key(account.private_key)
    return jwt.encode(header, claims, key, algorithms=["RS256"])


class FcmClient:
    """Sends one push message per call; a refused access token is refreshed once."""

    def __init__(
        self,
        project_id: str,
        account: ServiceAccount,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.project_id = project_id
        self.account = account
        self.url = f"{endpoint.rstrip('/')}/v1/projects/{project_id}/messages:send"
        self._client = client or httpx.Client(timeout=10.0)
        # The token endpoint is retried in place (briefly): it is idempotent and cheap.
        self._token_http = RetryingHttp(self._client, RetryPolicy(3, 0.2, 2.0))
        self.tokens = TokenCache(self._fetch_token, refresh_margin=60.0, clock=clock)

    def close(self) -> None:
        self._client.close()

    def _fetch_token(self) -> tuple[str, float]:
        form = {"grant_type": GRANT_TYPE, "assertion": service_account_assertion(self.account)}
        try:
            response = self._token_http.request(
                "POST", self.account.token_uri, data=form, idempotent=True
            )
        except SourceError as exc:
            raise DeliveryError(f"FCM token endpoint: {exc}") from exc
        if response.status_code != 200:
            raise DeliveryError(
                f"FCM token refused ({response.status_code}): {response.text[:300]}",
                permanent=response.status_code in (400, 401, 403),
            )
        body = response.json()
        return str(body["access_token"]), float(body.get("expires_in", 3600))

    def send(self, token: str, title: str, body: str, data: Mapping[str, Any] | None = None) -> str:
        """The message name FCM assigned; ``DeliveryError`` / ``TargetGone`` otherwise."""
        payload = {
            "message": {
                "token": token,
                "notification": {"title": title, "body": body},
                "data": {k: _as_text(v) for k, v in (data or {}).items()},
            }
        }
        response = self._post(payload, force_token=False)
        if response.status_code == 401:
            response = self._post(payload, force_token=True)
        if response.status_code == 200:
            return str(response.json().get("name", ""))
        raise _failure(response)

    def _post(self, payload: dict[str, Any], *, force_token: bool) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens.get(force_token)}"}
        try:
            return self._client.post(self.url, json=payload, headers=headers)
        except httpx.TransportError as exc:
            raise DeliveryError(f"FCM {self.url}: {exc!r}") from exc


def _as_text(value: Any) -> str:
    """FCM's ``data`` is a map of strings; lists and numbers travel as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def fcm_error(response: httpx.Response) -> tuple[str, str, str | None]:
    """(status, message, errorCode) from a Google API error body, as FCM sends them."""
    try:
        error = response.json().get("error", {})
    except ValueError:
        return str(response.status_code), response.text[:300], None
    code = None
    for detail in error.get("details") or ():
        if str(detail.get("@type", "")).endswith("google.firebase.fcm.v1.FcmError"):
            code = detail.get("errorCode")
    return str(error.get("status", response.status_code)), str(error.get("message", "")), code


def _failure(response: httpx.Response) -> DeliveryError:
    status, message, code = fcm_error(response)
    text = f"FCM {response.status_code} {status} {code or ''}: {message}".replace("  ", " ")
    bad_token = code == "INVALID_ARGUMENT" and "registration token" in message.lower()
    if code in GONE_CODES or bad_token or (response.status_code == 404 and code is None):
        return TargetGone(text)
    if response.status_code in RETRY_STATUSES:
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        return DeliveryError(text, retry_after=wait)
    return DeliveryError(text, permanent=True)
