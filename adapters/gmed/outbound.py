"""Canonical Appointment changes to SIU messages for GMED, built with hl7apy.

The trigger follows the change: S17 entered-in-error, S26 noshow, S15 cancelled, S12 when
nothing was known before, S13 when start or end moved, else S14. GMED ids travel back in
the fields they came from (SCH-2 filler, SCH-1 placer, PID-3, AIP-3, AIL-3, AIG-3); an
appointment GMED has never seen gets Harmony as placer (``<id>^HARMONY``). Times are written
in the mapping set's zone with that zone's offset, so GMED can read them either way.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from hl7apy.core import Message as HL7apyMessage

from adapters.gmed.codes import PREFIX
from adapters.gmed.times import parse_ts, to_hl7_ts
from mappings.model import MappingSet

__all__ = ["HARMONY", "build_siu", "choose_trigger", "escape"]

HARMONY = "Harmony"
_STRUCTURE_VERSION = "2.5"
_TABLE_0278 = {
    "booked": "Booked",
    "pending": "Pending",
    "proposed": "Pending",
    "waitlist": "Waitlist",
    "cancelled": "Cancelled",
    "noshow": "Noshow",
    "entered-in-error": "Deleted",
    "arrived": "Started",
    "checked-in": "Started",
    "fulfilled": "Complete",
}


def escape(value: str) -> str:
    """Escape one value for the default separators (|^~\\&)."""
    return (
        value.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
        .replace("\r", "\\X0D\\")
        .replace("\n", "\\.br\\")
    )


def _composite(*parts: str) -> str:
    out = "^".join(escape(p) for p in parts)
    return out.rstrip("^")


def choose_trigger(
    appointment: Mapping[str, Any],
    previous: Mapping[str, Any] | None = None,
    previous_status: str | None = None,
) -> str:
    """The SIU trigger event that tells GMED about this change."""
    status = appointment.get("status")
    if status == "entered-in-error":
        return "S17"
    if status == "noshow":
        return "S26"
    if status == "cancelled":
        return "S15"
    if previous is None and previous_status is None:
        return "S12"
    if previous is not None and (
        previous.get("start") != appointment.get("start")
        or previous.get("end") != appointment.get("end")
    ):
        return "S13"
    return "S14"


def _gmed_id(identifiers: list[Mapping[str, Any]], kind: str) -> tuple[str, str] | None:
    """(value, namespace) of the first identifier whose system is urn:harmony:gmed:<kind>."""
    base = f"{PREFIX}:{kind}"
    for ident in identifiers:
        sys, value = ident.get("system", ""), ident.get("value", "")
        if value and (sys == base or sys.startswith(base + ":")):
            return value, unquote(sys[len(base) + 1 :])
    return None


def _actor_identifier(actor: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(resource type, system, value) from a reference: identifier, conditional or literal."""
    ref = actor.get("reference", "")
    rtype = ref.split("?", 1)[0].split("/", 1)[0] or actor.get("type", "")
    ident = actor.get("identifier")
    if ident and ident.get("value"):
        return rtype, ident.get("system", ""), ident["value"]
    if "?identifier=" in ref:
        token = ref.split("?identifier=", 1)[1]
        sys, _, value = token.partition("|")
        return rtype, sys, value
    if "/" in ref:
        return rtype, "", ref.split("/", 1)[1]
    return None


def _local_id(
    sys: str, value: str, kind: str, crosswalks: Mapping[str, Any]
) -> tuple[str, str | None]:
    """GMED's own id for an actor and its namespace ('HARMONY' when GMED has none)."""
    if sys == f"{PREFIX}:{kind}" or sys.startswith(f"{PREFIX}:{kind}:"):
        return value, None
    for local, cw in crosswalks.items():
        if cw.system == sys and cw.value == value:
            return local, None
    return value, "HARMONY"


def _filler_status(status: str, mapping: MappingSet) -> str:
    for code, mapped in mapping.content.status.items():
        if mapped == status:
            return code
    return _TABLE_0278.get(status, status)


def siu_message(
    trigger: str,
    zone: ZoneInfo,
    receiving_application: str,
    receiving_facility: str,
    *,
    now: datetime | None = None,
    control_id: str | None = None,
) -> HL7apyMessage:
    """An SIU v2.5 with its MSH filled in (Harmony sending, UTF-8, production)."""
    msg = HL7apyMessage("SIU_S12", version=_STRUCTURE_VERSION)
    msh = msg.msh
    msh.msh_3 = HARMONY
    msh.msh_4 = HARMONY
    msh.msh_5 = escape(receiving_application)
    msh.msh_6 = escape(receiving_facility)
    msh.msh_7 = to_hl7_ts(now or datetime.now(UTC), zone)
    msh.msh_9 = f"SIU^{trigger}^SIU_S12"
    msh.msh_10 = control_id or uuid.uuid4().hex[:20]
    msh.msh_11 = "P"
    msh.msh_12 = _STRUCTURE_VERSION
    msh.msh_18 = "UNICODE UTF-8"
    return msg


def build_siu(
    appointment: Mapping[str, Any],
    *,
    mapping: MappingSet,
    default_timezone: str,
    receiving_application: str,
    receiving_facility: str,
    previous: Mapping[str, Any] | None = None,
    previous_status: str | None = None,
    control_id: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """An SIU message (CR-separated, UTF-8) telling GMED about a canonical Appointment."""
    zone = mapping.zone(default_timezone)
    trigger = choose_trigger(appointment, previous, previous_status)
    msg = siu_message(
        trigger, zone, receiving_application, receiving_facility, now=now, control_id=control_id
    )

    identifiers = list(appointment.get("identifier", []))
    status = str(appointment.get("status", "booked"))
    sch = msg.sch
    placer = _gmed_id(identifiers, "placer")
    if placer is None:
        own = appointment.get("id") or (identifiers[0]["value"] if identifiers else None)
        placer = (str(own), "HARMONY") if own else None
    if placer is not None:
        sch.sch_1 = _composite(*placer)
    if filler := _gmed_id(identifiers, "filler"):
        sch.sch_2 = _composite(*filler)
    reason = appointment.get("cancelationReason", {}).get("text") if status == "cancelled" else ""
    sch.sch_6 = _composite(reason or trigger)
    if reasons := appointment.get("reasonCode"):
        sch.sch_7 = _composite(reasons[0].get("text", ""))
    if atype := appointment.get("appointmentType"):
        coding = (atype.get("coding") or [{}])[0]
        local = next(
            (
                code
                for code, c in mapping.content.appointment_types.items()
                if c.code == coding.get("code") and c.system == coding.get("system")
            ),
            None,
        )
        sch.sch_8 = _composite(local or atype.get("text", ""), atype.get("text", ""))
    start, end = appointment.get("start"), appointment.get("end")
    if start and end:
        begin, finish = _parse_instant(start), _parse_instant(end)
        minutes = round((finish - begin).total_seconds() / 60)
        local_start, local_end = to_hl7_ts(begin, zone), to_hl7_ts(finish, zone)
        sch.sch_9 = str(minutes)
        sch.sch_10 = "min^Minutes^ISO+"
        sch.sch_11 = f"^^{minutes}^{local_start}^{local_end}"
        tq1 = msg.add_segment("TQ1")
        tq1.tq1_1 = "1"
        tq1.tq1_7 = local_start
        tq1.tq1_8 = local_end
    sch.sch_25 = _composite(_filler_status(status, mapping))

    participants = list(appointment.get("participant", []))
    for part in participants:
        found = _actor_identifier(part.get("actor", {}))
        if found and found[0] == "Patient":
            _, sys, value = found
            namespace = ""
            base = f"{PREFIX}:patient"
            if sys.startswith(base + ":"):
                namespace = unquote(sys[len(base) + 1 :])
            elif sys != base:
                namespace = "HARMONY"
            group = msg.add_group("SIU_S12_PATIENT")
            group.pid.pid_1 = "1"
            group.pid.pid_3 = _composite(value, "", "", namespace)
            break

    resources = msg.add_group("SIU_S12_RESOURCES")
    resources.rgs.rgs_1 = "1"
    counters = {"AIG": 0, "AIL": 0, "AIP": 0}
    for part in participants:
        found = _actor_identifier(part.get("actor", {}))
        if not found or found[0] == "Patient":
            continue
        rtype, sys, value = found
        if rtype == "Practitioner":
            local, ns = _local_id(sys, value, "provider", mapping.content.providers)
            counters["AIP"] += 1
            seg = resources.add_group("SIU_S12_PERSONNEL_RESOURCE").aip
            seg.aip_1 = str(counters["AIP"])
            seg.aip_3 = _composite(local, *([""] * 7), ns or "")
            seg.aip_12 = escape(_filler_status(status, mapping))
        elif rtype == "Location":
            local, ns = _local_id(sys, value, "location", mapping.content.locations)
            counters["AIL"] += 1
            seg = resources.add_group("SIU_S12_LOCATION_RESOURCE").ail
            seg.ail_1 = str(counters["AIL"])
            parts = local.split("^") if ns is None else [local]
            seg.ail_3 = "^".join(escape(p) for p in parts)
            seg.ail_12 = escape(_filler_status(status, mapping))
        else:
            counters["AIG"] += 1
            seg = resources.add_group("SIU_S12_GENERAL_RESOURCE").aig
            seg.aig_1 = str(counters["AIG"])
            seg.aig_3 = _composite(value)
            seg.aig_14 = escape(_filler_status(status, mapping))
    return msg.to_er7().encode("utf-8") + b"\r"


def _parse_instant(text: str) -> datetime:
    """A FHIR instant (ISO 8601 with offset) as an aware datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        return parse_ts(moment.strftime("%Y%m%d%H%M%S"), UTC).utc
    return moment
