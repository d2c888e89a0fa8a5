"""What a write returns: the record(s) as JSON and the outbound message ids to publish."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Outcome:
    data: Any
    outbound_ids: list[int] = field(default_factory=list)
    """GMED messages stored in the change's transaction; publish them on the bus
    (``runtime.publish(OUTBOUND, ids)``) after the call returns."""
