"""GMED ingest speed: our parser and normalizer against hl7apy and python-hl7 on the same SIUs.

Every SIU fixture (tests/fixtures/hl7v2 and hl7v2_edge) is cycled on one core for a fixed
time per contender; FHIR model validation is not part of the normalize figure (the
repository validates once, on write).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import hl7
from hl7apy.parser import parse_message as hl7apy_parse

from adapters.gmed.normalize import normalize_bytes
from adapters.gmed.parser import parse_message
from mappings.model import MappingContent, MappingSet, TriggerRule

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
SECONDS = 2.0
TARGET_PARSE = 20_000
TARGET_NORMALIZE = 5_000


def _messages() -> list[bytes]:
    paths = sorted((FIXTURES / "hl7v2").glob("*siu*.hl7"))
    paths += sorted((FIXTURES / "hl7v2_edge").glob("*siu*.hl7"))
    return [p.read_bytes() for p in paths]


def _mapping() -> MappingSet:
    """The trigger and status tables of the GMED defaults, enough for every fixture."""
    triggers = {
        "S12": TriggerRule(event="booked", status="booked"),
        "S13": TriggerRule(event="rescheduled"),
        "S14": TriggerRule(event="modified"),
        "S15": TriggerRule(event="cancelled", status="cancelled"),
        "S16": TriggerRule(event="discontinued", status="cancelled"),
        "S17": TriggerRule(event="deleted", status="entered-in-error"),
        "S26": TriggerRule(event="noshow", status="noshow"),
    }
    status = {
        "Booked": "booked",
        "Confirmed": "booked",
        "Scheduled": "booked",
        "Pending": "pending",
        "Cancelled": "cancelled",
        "Dc": "cancelled",
        "Deleted": "entered-in-error",
        "Noshow": "noshow",
    }
    content = MappingContent(trigger_events=triggers, status=status)
    return MappingSet(source="gmed", version=1, content=content)


def _rate(work: Callable[[bytes], object], messages: list[bytes], seconds: float) -> float:
    """Messages per second of ``work`` over ``seconds`` of whole passes through ``messages``."""
    done = 0
    began = time.perf_counter()
    while True:
        for raw in messages:
            work(raw)
        done += len(messages)
        elapsed = time.perf_counter() - began
        if elapsed >= seconds:
            return done / elapsed


def run(seconds: float = SECONDS) -> list[str]:
    """Measure and return the report lines."""
    messages = _messages()
    mapping = _mapping()
    texts = [m.removeprefix(b"\xef\xbb\xbf").decode(parse_message(m).codec) for m in messages]
    cr_texts = {
        m: t.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
        for m, t in zip(messages, texts, strict=True)
    }

    ours_parse = _rate(parse_message, messages, seconds)
    ours_norm = _rate(lambda raw: normalize_bytes(raw, mapping, "UTC"), messages, seconds)
    apy = _rate(lambda raw: hl7apy_parse(cr_texts[raw], find_groups=False), messages, seconds)
    phl7 = _rate(lambda raw: hl7.parse(cr_texts[raw]), messages, seconds)
    return [
        f"normalize: {len(messages)} SIU fixtures cycled, {seconds:.0f} s each, one core",
        f"  harmony parse            {ours_parse:10,.0f} msg/s  (target {TARGET_PARSE:,})",
        f"  harmony parse+normalize  {ours_norm:10,.0f} msg/s  (target {TARGET_NORMALIZE:,})",
        f"  hl7apy parse             {apy:10,.0f} msg/s",
        f"  python-hl7 parse         {phl7:10,.0f} msg/s",
        f"  parse: {ours_parse / apy:,.0f}x hl7apy, {ours_parse / phl7:.1f}x python-hl7; "
        f"parse+normalize: {ours_norm / apy:,.0f}x hl7apy parse alone",
    ]


if __name__ == "__main__":
    for line in run():
        print(line)
