"""An FCM HTTP v1 sandbox: Google's service-account token endpoint and ``messages:send``.

It checks what Google checks (an RS256 assertion signed by a registered service-account
key, its ``aud``, ``scope`` and lifetime; a live bearer token; the project; the message
shape, with ``data`` values as strings) and answers in Google's error format, so the client
is exercised on the bodies it meets in production: 401 UNAUTHENTICATED, 404 UNREGISTERED,
429 QUOTA_EXCEEDED with Retry-After, 500 INTERNAL, 503 UNAVAILABLE. Faults are scripted on
the state; every accepted message is kept for assertions.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from joserfc.jws import extract_compact
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.notifications.fcm import GRANT_TYPE, SCOPE

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_STATUS = {
    400: ("INVALID_ARGUMENT", "INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", None, "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    404: ("NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for quota metric."),
    500: ("INTERNAL", "INTERNAL", "Internal error encountered."),
    503: ("UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
}


def google_error(status: int, message: str | None = None, **extra: Any) -> dict[str, Any]:
    """A Google API error body, with FCM's errorCode detail where FCM sends one."""
    name, code, default = _STATUS.get(status, ("UNKNOWN", None, "Unknown error."))
    error: dict[str, Any] = {"code": status, "message": message or default, "status": name}
    details: list[dict[str, Any]] = []
    if code is not None:
        details.append({"@type": FCM_ERROR, "errorCode": code})
    if extra.get("field_violations"):
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": extra["field_violations"],
            }
        )
    if details:
        error["details"] = details
    return {"error": error}


@dataclass(frozen=True, slots=True)
class Fault:
    status: int
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class Sent:
    name: str
    message: dict[str, Any]


@dataclass
class FcmSandboxState:
    """What the sandbox knows; tests seed it, script faults and read ``sent``."""

    project_id: str = "harmony-sandbox"
    token_lifetime: int = 3600
    keys: dict[str, KeySet] = field(default_factory=dict)
    access_tokens: dict[str, float] = field(default_factory=dict)
    unregistered: set[str] = field(default_factory=set)
    faults: deque[Fault] = field(default_factory=deque)
    sent: list[Sent] = field(default_factory=list)
    token_requests: int = 0
    send_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def service_account(self, token_uri: str) -> dict[str, Any]:
        """A new service account's key file (as Google issues it), registered here."""
        key = RSAKey.generate_key(2048)
        kid = key.thumbprint()
        email = f"harmony-push-{secrets.token_hex(3)}@{self.project_id}.iam.gserviceaccount.com"
        public = RSAKey.import_key(key.as_dict(private=False))
        public_dict = public.as_dict()
        public_dict["kid"] = kid
        with self.lock:
            self.keys[email] = KeySet([RSAKey.import_key(public_dict)])
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": kid,
            "private_key": key.as_pem(private=True).decode(),
            "client_email": email,
            "client_id": str(secrets.randbelow(10**20)),
            "token_uri": token_uri,
        }

    def fail_next(self, status: int, *, times: int = 1, retry_after: str | None = None) -> None:
        with self.lock:
            self.faults.extend(Fault(status, retry_after) for _ in range(times))

    def revoke_tokens(self) -> None:
        """Every access token issued so far stops working (a key rotation, a revocation)."""
        with self.lock:
            self.access_tokens.clear()

    def unregister(self, device_token: str) -> None:
        with self.lock:
            self.unregistered.add(device_token)


def create_fcm_sandbox(state: FcmSandboxState | None = None) -> Starlette:
    """The ASGI app; ``app.state.fcm`` is its state. Token URI: ``<base>/token``."""
    fcm = state if state is not None else FcmSandboxState()

    async def token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        with fcm.lock:
            fcm.token_requests += 1
        if form.get("grant_type") != GRANT_TYPE:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        problem = _check_assertion(fcm, form.get("assertion", ""), str(request.url))
        if problem:
            return _oauth_error("invalid_grant", problem)
        value = f"ya29.sandbox-{secrets.token_urlsafe(24)}"
        with fcm.lock:
            fcm.access_tokens[value] = time.time() + fcm.token_lifetime
        return JSONResponse(
            {"access_token": value, "expires_in": fcm.token_lifetime, "token_type": "Bearer"}
        )

    async def send(request: Request) -> Response:
        with fcm.lock:
            fcm.send_requests += 1
        header = request.headers.get("authorization", "")
        expires = fcm.access_tokens.get(header.removeprefix("Bearer "), 0.0)
        if not header.startswith("Bearer ") or expires <= time.time():
            return JSONResponse(google_error(401), status_code=401)
        if request.path_params["project"] != fcm.project_id:
            text = f"Permission 'cloudmessaging.messages.create' denied on project {fcm.project_id}"
            return JSONResponse(google_error(403, text), status_code=403)
        with fcm.lock:
            fault = fcm.faults.popleft() if fcm.faults else None
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return JSONResponse(google_error(fault.status), fault.status, headers=headers)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return JSONResponse(google_error(400, "Invalid JSON payload received."), 400)
        violations = _violations(body)
        if violations:
            text = "; ".join(v["description"] for v in violations)
            return JSONResponse(google_error(400, text, field_violations=violations), 400)
        message = body["message"]
        if message["token"] in fcm.unregistered:
            return JSONResponse(google_error(404), status_code=404)
        name = f"projects/{fcm.project_id}/messages/{secrets.randbelow(10**16)}"
        with fcm.lock:
            fcm.sent.append(Sent(name, message))
        return JSONResponse({"name": name})

    app = Starlette(
        routes=[
            Route("/token", token, methods=["POST"]),
            Route("/v1/projects/{project}/messages:send", send, methods=["POST"]),
        ]
    )
    app.state.fcm = fcm
    return app


def _oauth_error(error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


def _check_assertion(fcm: FcmSandboxState, assertion: str, token_uri: str) -> str | None:
    """Why Google would refuse this assertion; None when it would accept it."""
    try:
        compact = extract_compact(assertion.encode())
        header = compact.headers()
        claims = orjson.loads(compact.payload)
    except (JoseError, ValueError):
        return "Invalid JWT: not a compact JWS."
    if header.get("alg") != "RS256":
        return "Invalid JWT: alg must be RS256."
    keys = fcm.keys.get(str(claims.get("iss")))
    if keys is None:
        return "Invalid JWT Signature."  # what Google answers for an unknown account
    kids = {k.kid for k in keys.keys}
    if header.get("kid") not in kids:
        return "Invalid JWT Signature."
    try:
        jwt.decode(assertion, keys, algorithms=["RS256"])
    except JoseError:
        return "Invalid JWT Signature."
    now = time.time()
    if claims.get("aud") != token_uri:
        return f"Invalid JWT: aud must be {token_uri}."
    if SCOPE not in str(claims.get("scope", "")).split():
        return "Invalid JWT: the scope does not include firebase.messaging."
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        return "Invalid JWT: iat and exp are required."
    if exp <= now or iat > now + 60 or exp - iat > 3600:
        return (
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
            "timeframe."
        )
    return None


def _violations(body: Any) -> list[dict[str, str]]:
    """Field violations in Google's words; empty when the message is well formed."""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, dict):
        return [{"field": "message", "description": "message is required"}]
    out: list[dict[str, str]] = []
    token = message.get("token")
    if not isinstance(token, str) or not token:
        out.append({"field": "message.token", "description": "message.token is required"})
    notification = message.get("notification") or {}
    for key in ("title", "body"):
        if not isinstance(notification.get(key, ""), str):
            out.append(
                {
                    "field": f"message.notification.{key}",
                    "description": f"Invalid value at 'message.notification.{key}' (TYPE_STRING)",
                }
            )
    for index, (key, value) in enumerate((message.get("data") or {}).items()):
        if not isinstance(value, str):
            out.append(
                {
                    "field": f"message.data[{index}].value",
                    "description": f"Invalid value at 'message.data[{index}].value' "
                    f"(TYPE_STRING), {value!r} (key {key!r})",
                }
            )
    return out
