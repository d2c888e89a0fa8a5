"""TLS contexts for MLLP. Mutual TLS is how most sites authenticate an interface peer."""

from __future__ import annotations

import ssl
from pathlib import Path

StrPath = str | Path


def server_ssl_context(
    cert: StrPath, key: StrPath, client_ca: StrPath | None = None
) -> ssl.SSLContext:
    """Server context; with `client_ca`, peers must present a certificate signed by it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    if client_ca is not None:
        ctx.load_verify_locations(cafile=str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_ssl_context(
    ca: StrPath | None = None,
    cert: StrPath | None = None,
    key: StrPath | None = None,
    *,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """Client context trusting `ca` (system store when None), presenting `cert` for mutual TLS."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = check_hostname
    if cert is not None:
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key) if key else None)
    return ctx
