"""Which adapter package serves each source type; imported lazily so a hub without Google
installed still starts, and so ``hub`` names adapters in one place only."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from adapters.contract import IntegrationConfig, SourceClient

ADAPTERS = {"epic": "adapters.epic", "athena": "adapters.athena", "google": "adapters.google"}

ClientFactory = Callable[[IntegrationConfig], SourceClient]


def adapter_module(source_type: str, module: str) -> Any:
    try:
        package = ADAPTERS[source_type]
    except KeyError:
        raise LookupError(f"no adapter for source type {source_type!r}") from None
    return importlib.import_module(f"{package}.{module}")


def make_source_client(config: IntegrationConfig) -> SourceClient:
    client: SourceClient = adapter_module(config.source_type, "client").make_client(config)
    return client
