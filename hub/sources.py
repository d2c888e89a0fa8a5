"""Which adapter package serves each source type; imported lazily so a hub without Google
installed still starts, and so ``hub`` names adapters in one place only."""

from __future__ import annotations

import hashlib
import importlib
import threading
from collections.abc import Callable
from typing import Any

import orjson

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


class ClientPool:
    """One client per integration configuration, kept between calls.

    A client holds the integration's access token and HTTP connections; making one per
    booking meant a token request and a TLS handshake every time (Epic: ~100 ms). A changed
    configuration (new credentials, base URL) gets a new client.
    """

    def __init__(self, factory: ClientFactory = make_source_client) -> None:
        self.factory = factory
        self._clients: dict[str, tuple[str, SourceClient]] = {}
        self._lock = threading.Lock()

    def __call__(self, config: IntegrationConfig) -> SourceClient:
        fingerprint = hashlib.sha256(
            orjson.dumps(
                [config.source_type, config.base_url, config.credentials, config.options],
                option=orjson.OPT_SORT_KEYS,
            )
        ).hexdigest()
        with self._lock:
            known = self._clients.get(config.name)
            if known is not None and known[0] == fingerprint:
                return known[1]
            client = self.factory(config)
            self._clients[config.name] = (fingerprint, client)
        if known is not None:
            known[1].close()
        return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, {}
        for _, client in clients.values():
            client.close()
