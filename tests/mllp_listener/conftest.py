"""Event loops for the MLLP tests: the hub serves MLLP on uvloop (hub/cli.py), so the server
and TLS tests run on it as well as on asyncio's own loop; they do not always agree (uvloop
starts reading a new connection before the server can ask for TLS)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import pytest

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard] on Linux/macOS
    pass
else:
    LOOPS["uvloop"] = uvloop.new_event_loop

# Put on a test module to run each of its tests on every available loop.
BOTH_LOOPS = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], Any]]:
    """asyncio's loop unless the test asks for the loops by name (BOTH_LOOPS)."""
    marker = item.get_closest_marker("asyncio")
    if marker is not None and "loop_factories" in marker.kwargs:
        return LOOPS
    return {"asyncio": asyncio.new_event_loop}
