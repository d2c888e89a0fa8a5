"""The mapping sets shipped with Harmony, one JSON file per source in ``defaults/``."""

from __future__ import annotations

import re
from pathlib import Path

from mappings.errors import InvalidSourceName
from mappings.model import MappingContent

DEFAULTS_DIR = Path(__file__).parent / "defaults"
_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_RESERVED = frozenset({"unmapped"})  # a path segment of its own in the API


def check_source_name(source: str) -> str:
    """Reject names that could escape ``defaults/`` or clash with API paths."""
    if not _SOURCE_NAME.fullmatch(source) or source in _RESERVED or ".." in source:
        raise InvalidSourceName(
            f"invalid source name {source!r}: use 1-64 lower-case letters, digits, '_', '-' "
            f"or '.', starting with a letter or digit (and not {', '.join(sorted(_RESERVED))})"
        )
    return source


def shipped_sources(directory: Path = DEFAULTS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.json"))


def load_default(source: str, directory: Path = DEFAULTS_DIR) -> MappingContent | None:
    """The shipped content for a source, or None when Harmony ships nothing for it."""
    path = directory / f"{check_source_name(source)}.json"
    if not path.is_file():
        return None
    return MappingContent.model_validate_json(path.read_bytes())
