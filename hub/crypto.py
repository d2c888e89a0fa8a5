"""Secrets at rest (integration credentials, webhook secrets), sealed with the settings key.

Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``; the key is derived from
``HARMONY_SECRET_KEY`` with HKDF so the raw setting is never used as a key directly.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"harmony", info=b"integration secrets"
        ).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, value: Any) -> bytes:
        return self._fernet.encrypt(orjson.dumps(value))

    def open(self, sealed: bytes) -> Any:
        try:
            return orjson.loads(self._fernet.decrypt(sealed))
        except InvalidToken:
            raise ValueError(
                "stored secret cannot be decrypted: HARMONY_SECRET_KEY changed since it was saved"
            ) from None
