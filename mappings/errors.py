"""Why a mapping-store request failed, in terms the CLI and API turn into clear messages."""

from __future__ import annotations

from canonical.errors import RejectedInput


class UnknownSource(RejectedInput, LookupError):
    """No stored versions and no shipped defaults: a message from it cannot be read."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__(
            f"no mapping set for source {source!r}: it has no stored versions and no shipped "
            f"defaults; create a version for it first"
        )


class UnknownVersion(LookupError):
    """The source exists but has no such version."""

    def __init__(self, source: str, version: int) -> None:
        self.source, self.version = source, version
        super().__init__(f"source {source!r} has no mapping version {version}")


class NothingToRollBack(Exception):
    """The active version is the first one ever activated for the source."""

    def __init__(self, source: str, version: int) -> None:
        self.source, self.version = source, version
        super().__init__(
            f"cannot roll back {source!r}: version {version} is the first one activated"
        )


class InvalidSourceName(ValueError):
    """Source names become file names and URL segments, so they are kept to a safe alphabet."""
