"""Inbound channels: which normalizer and which mapping source read a stored message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from canonical.records import SourceBundle
from mappings.model import MappingSet

Normalizer = Callable[[bytes, MappingSet, str], SourceBundle]


@dataclass(frozen=True, slots=True)
class InboundChannel:
    name: str
    source: str
    """The mapping-set source and the canonical ``source_system`` of what it writes."""
    normalize: Normalizer


def _gmed(raw: bytes, mapping: MappingSet, default_timezone: str) -> SourceBundle:
    from adapters.gmed.normalize import normalize_bytes

    return normalize_bytes(raw, mapping, default_timezone)


def _adapter(source_type: str) -> Normalizer:
    """The adapter's ``normalize_bytes``, imported on first use."""

    def normalize(raw: bytes, mapping: MappingSet, default_timezone: str) -> SourceBundle:
        from hub.sources import adapter_module

        bundle: SourceBundle = adapter_module(source_type, "normalize").normalize_bytes(
            raw, mapping, default_timezone
        )
        return bundle

    return normalize


def _upload(raw: bytes, mapping: MappingSet, default_timezone: str) -> SourceBundle:
    from adapters.upload.normalize import normalize_upload

    return normalize_upload(raw, mapping, default_timezone)


CHANNELS: dict[str, InboundChannel] = {
    "gmed": InboundChannel(name="gmed", source="gmed", normalize=_gmed),
    **{
        name: InboundChannel(name=name, source=name, normalize=_adapter(name))
        for name in ("epic", "athena", "google")
    },
    "upload": InboundChannel(name="upload", source="upload", normalize=_upload),
}


def inbound_channel(name: str) -> InboundChannel:
    try:
        return CHANNELS[name]
    except KeyError:
        raise LookupError(f"no inbound channel named {name!r}") from None


GMED_ACCEPTED_TYPES = frozenset(
    {f"SIU^{t}" for t in ("S12", "S13", "S14", "S15", "S16", "S17", "S26")} | {"ADT^A04", "ADT^A08"}
)
"""What the GMED listener accepts; anything else is refused with AR so the sender knows."""
