"""People who use Harmony: built-in users with hashed passwords and their roles.

Passwords are hashed with scrypt (standard library, memory-hard); a hash carries its own
parameters and salt, so they can be raised later without breaking existing users.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from canonical.tables import AUTO_ID
from hub.message_store import utcnow

ROLES = frozenset({"admin", "physician", "staff", "call_center", "integration", "patient"})

metadata = MetaData()

users = Table(
    "app_user",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("username", String(128), nullable=False, unique=True),
    Column("display_name", String(255), nullable=False),
    Column("email", String(255), nullable=True),
    Column("password_hash", String(255), nullable=True, comment="None: signs in through OIDC"),
    Column("roles", JSON, nullable=False),
    Column("physician_id", BigInteger, nullable=True, comment="physician.id"),
    Column("patient_id", String(64), nullable=True, comment="canonical Patient id"),
    Column("external_subject", String(512), nullable=True, unique=True, comment="iss|sub"),
    Column("active", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    params = f"{_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}"
    return f"scrypt${params}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, n, r, p, salt, digest = stored.split("$")
    candidate = hashlib.scrypt(
        password.encode(), salt=_unb64(salt), dklen=32, n=int(n), r=int(r), p=int(p)
    )
    return hmac.compare_digest(candidate, _unb64(digest))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    display_name: str
    email: str | None
    roles: frozenset[str]
    physician_id: int | None
    patient_id: str | None
    active: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "email": self.email,
            "roles": sorted(self.roles),
            "physician_id": self.physician_id,
            "patient_id": self.patient_id,
            "active": self.active,
        }


class UserError(ValueError):
    pass


def _user(row: Row[Any]) -> User:
    return User(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        email=row.email,
        roles=frozenset(row.roles or ()),
        physician_id=row.physician_id,
        patient_id=row.patient_id,
        active=bool(row.active),
    )


def create_user(
    engine: Engine,
    username: str,
    *,
    roles: set[str] | frozenset[str],
    password: str | None = None,
    display_name: str | None = None,
    email: str | None = None,
    physician_id: int | None = None,
    patient_id: str | None = None,
    external_subject: str | None = None,
) -> User:
    unknown = set(roles) - ROLES
    if unknown:
        raise UserError(f"unknown roles {sorted(unknown)}; known: {sorted(ROLES)}")
    values = {
        "username": username,
        "display_name": display_name or username,
        "email": email,
        "password_hash": hash_password(password) if password else None,
        "roles": sorted(roles),
        "physician_id": physician_id,
        "patient_id": patient_id,
        "external_subject": external_subject,
        "active": 1,
        "created_at": utcnow(),
    }
    try:
        with engine.begin() as conn:
            new_id = conn.execute(insert(users).values(**values)).inserted_primary_key[0]  # type: ignore[index]
    except IntegrityError:
        raise UserError(f"a user named {username!r} already exists") from None
    found = get_user(engine, int(new_id))
    assert found is not None
    return found


def get_user(engine: Engine, user_id: int) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return None if row is None else _user(row)


def authenticate(engine: Engine, username: str, password: str) -> User | None:
    """The active user with this password; None otherwise (the caller does not learn which)."""
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.username == username)).first()
    if row is None:
        verify_password(password, hash_password("timing-equaliser"))
        return None
    if not row.active or not verify_password(password, row.password_hash):
        return None
    return _user(row)


def user_by_subject(engine: Engine, external_subject: str) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(users).where(users.c.external_subject == external_subject)
        ).first()
    return None if row is None else _user(row)


class LoginThrottle:
    """Failed sign-ins counted per username and per client address, in this process.

    After ``max_failures`` failures within ``window`` seconds the key is refused until the
    oldest of them ages out. A success clears the username's count, not the address's (or
    an attacker could clear their address by signing in to their own account in between).

    Kept in memory rather than in the database: counting must not add a write to the
    SQLite file per failed guess (one writer, shared with MLLP ingest), and a lockout that
    outlives a restart helps nobody. The price: with several API processes each counts on
    its own, so the limit is ``max_failures`` per process.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.max_failures, self.window = max_failures, window
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, username: str, address: str | None) -> int:
        """Seconds until these may try again; 0 when they may try now."""
        now = self._clock()
        with self._lock:
            waits = [self._wait(key, now) for key in self._keys(username, address)]
        return max(waits, default=0)

    def failed(self, username: str, address: str | None) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) >= self._max_keys:
                self._prune(now)
            for key in self._keys(username, address):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(("user", username.casefold()), None)

    def _keys(self, username: str, address: str | None) -> list[tuple[str, str]]:
        keys = [("user", username.casefold())]
        if address:
            keys.append(("addr", address))
        return keys

    def _wait(self, key: tuple[str, str], now: float) -> int:
        times = self._failures.get(key)
        if not times:
            return 0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        if len(times) < self.max_failures:
            return 0
        return max(1, math.ceil(times[-self.max_failures] + self.window - now))

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._wait(key, now)
