"""Baseline MLLP servers for the ingest benchmark, run as separate processes.

- ``ceiling``: a bare asyncio MLLP server that ACKs at once without storing anything; no
  MLLP server in Python that commits first can beat it.
- ``hl7apy``: hl7apy's own MLLP server (socketserver threads; it closes the connection after
  each message, so its client reconnects per message) with a handler that builds the ACK from
  MSH-10 as cheaply as possible.
"""

from __future__ import annotations

import asyncio
import sys

VT, FS, CR = b"\x0b", b"\x1c", b"\r"


def quick_ack(message: bytes) -> bytes:
    msh = message.split(b"\r", 1)[0].split(b"|")
    control = msh[9] if len(msh) > 9 else b""
    return (
        b"MSH|^~\\&|HARMONY|BENCH|||20260101000000||ACK|A"
        + control
        + b"|P|2.5\rMSA|AA|"
        + control
        + b"\r"
    )


async def _ceiling_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    buffer = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        buffer += chunk
        while True:
            end = buffer.find(FS + CR)
            if end < 0:
                break
            start = buffer.find(VT)
            writer.write(VT + quick_ack(buffer[start + 1 : end]) + FS + CR)
            buffer = buffer[end + 2 :]
        await writer.drain()
    writer.close()


async def serve_ceiling(port: int) -> None:
    server = await asyncio.start_server(_ceiling_client, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def serve_hl7apy(port: int) -> None:
    from hl7apy.mllp import AbstractHandler, MLLPServer

    class AckHandler(AbstractHandler):  # type: ignore[misc]
        def reply(self) -> str:
            ack = quick_ack(self.incoming_message.encode())
            return (VT + ack + FS + CR).decode()

    handlers = {"SIU^S12^SIU_S12": (AckHandler,), "SIU^S12": (AckHandler,)}
    server = MLLPServer("127.0.0.1", port, handlers)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "ceiling":
        asyncio.run(serve_ceiling(port))
    else:
        serve_hl7apy(port)
