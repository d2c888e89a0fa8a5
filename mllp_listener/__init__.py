"""MLLP listener: framing, TLS, connection handling, ACK after the store commit.

Uses nothing else from Harmony and reads nothing beyond the MSH segment.
"""

from mllp_listener.ack import build_ack
from mllp_listener.client import open_connection
from mllp_listener.framing import Frame, FrameDecoder, FrameProblem, frame
from mllp_listener.header import HeaderError, MessageHeader, parse_header
from mllp_listener.server import MLLPServer
from mllp_listener.sink import MessageSink, Received, Rejection, StoreOutcome
from mllp_listener.streams import MLLPFramingError, MLLPReader, MLLPWriter
from mllp_listener.tls import client_ssl_context, server_ssl_context

__all__ = [
    "Frame",
    "FrameDecoder",
    "FrameProblem",
    "HeaderError",
    "MLLPFramingError",
    "MLLPReader",
    "MLLPServer",
    "MLLPWriter",
    "MessageHeader",
    "MessageSink",
    "Received",
    "Rejection",
    "StoreOutcome",
    "build_ack",
    "client_ssl_context",
    "frame",
    "open_connection",
    "parse_header",
    "server_ssl_context",
]
