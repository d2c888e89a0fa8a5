"""A vendor sandbox in its own process, so benchmarks measure the hub, not the sandbox.

``python -m bench.sandboxes epic PORT SLOTS JWKS_FILE``: an Epic sandbox with ``SLOTS`` free
slots on one schedule and our client registered with the public keys in ``JWKS_FILE``.
"""

from __future__ import annotations

import json
import sys

import uvicorn

EPIC_CLIENT_ID = "harmony-bench"


def main(argv: list[str]) -> None:
    kind, port, slots = argv[0], int(argv[1]), int(argv[2])
    if kind != "epic":
        raise SystemExit(f"unknown sandbox {kind!r}")
    from adapters.epic.sandbox import create_sandbox
    from adapters.epic.sandbox_state import EpicSandboxState

    state = EpicSandboxState()
    state.seed_slots(slots)
    with open(argv[3]) as jwks:
        state.register_client(EPIC_CLIENT_ID, json.load(jwks))
    uvicorn.run(create_sandbox(state), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
