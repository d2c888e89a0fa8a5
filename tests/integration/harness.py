"""Run `harmony` as a real process for end-to-end tests, and talk MLLP to it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
VT, FS, CR = b"\x0b", b"\x1c", b"\r"


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"harmony exited early: {proc.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"harmony did not listen on {port}")


class Harmony:
    """A `harmony serve` process on a given database; restartable, killable."""

    def __init__(self, database_url: str, broker_url: str = "memory://", **env: str) -> None:
        self.mllp_port = free_port()
        self.api_port = free_port()
        self.env = {
            **os.environ,
            "HARMONY_DATABASE_URL": database_url,
            "HARMONY_BROKER_URL": broker_url,
            "HARMONY_MLLP_PORT": str(self.mllp_port),
            "HARMONY_API_PORT": str(self.api_port),
            "HARMONY_LOG_LEVEL": "WARNING",
            "HARMONY_RETRY_BASE_SECONDS": "0.2",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> Harmony:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from hub.cli import main; main()", "serve", *args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for_port(self.mllp_port, self.proc)
        wait_for_port(self.api_port, self.proc)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def running(database_url: str, *args: str, **env: str) -> Iterator[Harmony]:
    hub = Harmony(database_url, **env).start(*args)
    try:
        yield hub
    finally:
        hub.stop()


class MLLPClient:
    """A blocking MLLP sender, the way most HL7 senders behave: send, wait for the ACK."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.buffer = b""

    def send(self, message: bytes) -> bytes:
        self.sock.sendall(VT + message + FS + CR)
        while FS + CR not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the ACK")
            self.buffer += chunk
        frame, _, self.buffer = self.buffer.partition(FS + CR)
        return frame[frame.find(VT) + 1 :]

    def close(self) -> None:
        self.sock.close()


def msa_code(ack: bytes) -> str:
    for segment in ack.split(b"\r"):
        if segment.startswith(b"MSA"):
            return segment.split(b"|")[1].decode()
    return ""
