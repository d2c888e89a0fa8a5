"""Roster shifts to GMED as HL7 v2 SIU messages, one message per shift, built with hl7apy.

Why SIU and not MFN: GMED already takes its schedule from us as SIU over the outbound
channel (the same MLLP peer, ACK handling, retries and parking), and a shift is a scheduled
activity with a time, a person and a place, which is what SIU describes: SCH carries the
shift (placer id ``<shift id>^HARMONY-ROSTER``, type, duration and timing), AIS the shift
type as the service, AIP the physician who works it, AIL the location. MFN^M02 (staff
master file) can say who a practitioner is but not when they are on duty, and resending a
whole roster as one master-file message would turn a swap of two shifts into a rewrite of
everything. So a change goes out as exactly the shifts it touches:

- ``S12`` new booking: a shift published for the first time (publish, or a shift added to a
  published roster);
- ``S13`` rescheduling: a published shift's time changed;
- ``S14`` modification: a published shift changed hands (swap, approved pickup, move to
  another physician) or was dropped (no AIP then, filler status ``Pending``: it is open);
- ``S15`` cancellation: a published shift was deleted.

Times are written in the shift type's zone with that zone's offset (TQ1-7/8, SCH-11, AIS-4),
so a night across a DST change reads right either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from adapters.gmed.outbound import escape, siu_message
from adapters.gmed.times import to_hl7_ts

__all__ = ["PLACER_NAMESPACE", "TRIGGERS", "RosterShift", "build_roster_siu"]

PLACER_NAMESPACE = "HARMONY-ROSTER"
TRIGGERS = frozenset({"S12", "S13", "S14", "S15"})


@dataclass(frozen=True, slots=True)
class RosterShift:
    """What GMED hears about one shift."""

    shift_id: int
    roster_name: str
    type_code: str
    type_name: str
    start: datetime
    end: datetime
    timezone: str
    service: str
    location: str
    physician_id: int | None
    physician_name: str | None


def _cx(*parts: str) -> str:
    return "^".join(escape(p) for p in parts).rstrip("^")


def build_roster_siu(
    shift: RosterShift,
    trigger: str,
    *,
    receiving_application: str,
    receiving_facility: str,
    reason: str = "",
    control_id: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """An SIU (CR-separated, UTF-8) telling GMED about one roster shift."""
    if trigger not in TRIGGERS:
        raise ValueError(f"roster messages use {sorted(TRIGGERS)}, not {trigger!r}")
    zone = ZoneInfo(shift.timezone)
    cancelled = trigger == "S15"
    status = "Cancelled" if cancelled else ("Booked" if shift.physician_id else "Pending")
    msg = siu_message(
        trigger, zone, receiving_application, receiving_facility, now=now, control_id=control_id
    )

    local_start, local_end = to_hl7_ts(shift.start, zone), to_hl7_ts(shift.end, zone)
    minutes = round((shift.end - shift.start).total_seconds() / 60)
    sch = msg.sch
    sch.sch_1 = _cx(str(shift.shift_id), PLACER_NAMESPACE)
    sch.sch_5 = _cx(shift.roster_name)
    sch.sch_6 = _cx(reason or trigger)
    sch.sch_7 = _cx(shift.type_name)
    sch.sch_8 = _cx(shift.type_code, shift.type_name)
    sch.sch_9 = str(minutes)
    sch.sch_10 = "min^Minutes^ISO+"
    sch.sch_11 = f"^^{minutes}^{local_start}^{local_end}"
    sch.sch_25 = status
    tq1 = msg.add_segment("TQ1")
    tq1.tq1_1 = "1"
    tq1.tq1_7 = local_start
    tq1.tq1_8 = local_end

    resources = msg.add_group("SIU_S12_RESOURCES")
    resources.rgs.rgs_1 = "1"
    if cancelled:
        resources.rgs.rgs_2 = "D"
    service = resources.add_group("SIU_S12_SERVICE").ais
    service.ais_1 = "1"
    service.ais_3 = _cx(shift.type_code, shift.type_name, "HARMONY")
    service.ais_4 = local_start
    service.ais_7 = str(minutes)
    service.ais_8 = "min^Minutes^ISO+"
    service.ais_10 = status
    location = resources.add_group("SIU_S12_LOCATION_RESOURCE").ail
    location.ail_1 = "1"
    location.ail_3 = _cx(shift.location)
    location.ail_4 = _cx(shift.service)
    location.ail_12 = status
    if shift.physician_id is not None:
        person = resources.add_group("SIU_S12_PERSONNEL_RESOURCE").aip
        person.aip_1 = "1"
        person.aip_3 = _cx(
            str(shift.physician_id), shift.physician_name or "", *([""] * 6), PLACER_NAMESPACE
        )
        person.aip_4 = "PHYSICIAN"
        person.aip_6 = local_start
        person.aip_9 = str(minutes)
        person.aip_10 = "min^Minutes^ISO+"
        person.aip_12 = status
    return msg.to_er7().encode("utf-8") + b"\r"
