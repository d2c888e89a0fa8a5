"""What changed between two mapping contents, entry by entry, for review before activation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mappings.model import MappingContent


@dataclass(frozen=True, slots=True)
class Change:
    """One entry added (before None), removed (after None) or changed.

    ``table`` is a MappingContent field; ``key`` is the code or local id inside it, or ""
    for a single-valued field such as ``timezone``. Values are as in the JSON content.
    """

    table: str
    key: str
    before: Any
    after: Any

    @property
    def kind(self) -> str:
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        return "changed"


def diff_content(before: MappingContent, after: MappingContent) -> list[Change]:
    """Changes in field order, keys sorted, so two runs print the same report."""
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    changes: list[Change] = []
    for table in MappingContent.model_fields:
        a, b = old.get(table), new.get(table)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(a.keys() | b.keys()):
                if a.get(key) != b.get(key):
                    changes.append(Change(table, key, a.get(key), b.get(key)))
        elif a != b:
            changes.append(Change(table, "", a, b))
    return changes
