"""TLS and mutual TLS with certificates minted per test session by the openssl CLI."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from mllp_listener import client_ssl_context, server_ssl_context
from tests.mllp_listener.conftest import BOTH_LOOPS
from tests.mllp_listener.mllp_support import (
    RecordingSink,
    connected,
    make_message,
    msa,
    read_ack,
    serving,
)

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not found"),
    BOTH_LOOPS,
]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}", cwd=d)  # fmt: skip


def _leaf(d: Path, name: str, ca: str, san: str | None = None) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN={name}", cwd=d)  # fmt: skip
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", ext.name,
             cwd=d)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca")
    _ca(d, "rogue_ca")
    _leaf(d, "server", "ca", "DNS:localhost,IP:127.0.0.1")
    _leaf(d, "gmed", "ca")
    _leaf(d, "intruder", "rogue_ca")
    return d


async def test_tls_round_trip(pki: Path) -> None:
    sink = RecordingSink()
    server_ctx = server_ssl_context(pki / "server.crt", pki / "server.key")
    client_ctx = client_ssl_context(pki / "ca.crt")
    async with (
        serving(sink, ssl_context=server_ctx) as server,
        connected(server, ssl=client_ctx, server_hostname="localhost") as (r, w),
    ):
        for i in range(5):
            w.write_message(make_message(f"TLS{i}"))
        await w.drain()
        answers = [msa(await read_ack(r)) for _ in range(5)]
        assert answers == [("AA", f"TLS{i}") for i in range(5)]
        assert w.get_extra_info("ssl_object") is not None
    assert len(sink.received) == 5


async def test_mutual_tls_accepts_a_client_certificate_from_the_ca(pki: Path) -> None:
    sink = RecordingSink()
    server_ctx = server_ssl_context(pki / "server.crt", pki / "server.key", pki / "ca.crt")
    client_ctx = client_ssl_context(pki / "ca.crt", pki / "gmed.crt", pki / "gmed.key")
    async with (
        serving(sink, ssl_context=server_ctx) as server,
        connected(server, ssl=client_ctx, server_hostname="localhost") as (r, w),
    ):
        w.write_message(make_message("MTLS1"))
        await w.drain()
        assert msa(await read_ack(r)) == ("AA", "MTLS1")
    assert [r.header.control_id for r in sink.received if r.header] == ["MTLS1"]


@pytest.mark.parametrize("client_cert", [None, "intruder"])
async def test_mutual_tls_refuses_clients_without_a_trusted_certificate(
    pki: Path, client_cert: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mllp_listener")
    sink = RecordingSink()
    server_ctx = server_ssl_context(pki / "server.crt", pki / "server.key", pki / "ca.crt")
    if client_cert is None:
        client_ctx = client_ssl_context(pki / "ca.crt")
    else:
        client_ctx = client_ssl_context(
            pki / "ca.crt", pki / f"{client_cert}.crt", pki / f"{client_cert}.key"
        )
    async with serving(sink, ssl_context=server_ctx) as server:
        # With TLS 1.3 the client may finish its handshake before the server refuses it, so
        # the refusal can show up at connect time or on the first read; either way no ACK.
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            async with connected(server, ssl=client_ctx, server_hostname="localhost") as (r, w):
                w.write_message(make_message("NOPE"))
                await w.drain()
                await read_ack(r)
        # A good client still gets through afterwards.
        good = client_ssl_context(pki / "ca.crt", pki / "gmed.crt", pki / "gmed.key")
        async with connected(server, ssl=good, server_hostname="localhost") as (r, w):
            w.write_message(make_message("YES"))
            await w.drain()
            assert msa(await read_ack(r)) == ("AA", "YES")
    assert [r.header.control_id for r in sink.received if r.header] == ["YES"]
    assert "TLS handshake with 127.0.0.1:" in caplog.text  # the operator sees who was refused
