"""``POST /fhir/Appointment/$find`` (Argonaut / IHE scheduling) over slot ranking.

Parameters in: ``start``, ``end``, ``practitioner`` (or Argonaut's ``provider``),
``location``, ``visit-type`` (or ``service-type``), ``patient`` and ``_count``. Practitioner
and location are filters, the visit type must match where the source states one, the
patient's history supplies provider continuity. The answer is a searchset Bundle of
proposed Appointments, each referencing its Slot, best first; why each was chosen is in
its ``comment`` for people and in a ranking extension (codes and score) for programs.
Nothing is stored: a proposal is booked with ``$book``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import ValidationError

from api.deps import BookingPrincipal, SessionDep, SettingsDep
from api.fhir import PREFIX, FhirError, json_body
from api.fhir_documents import FhirResponse
from api.slots import PreferencesIn, for_patient, ranked_for
from scheduling.ranking import RankedSlot

router = APIRouter(prefix=PREFIX, tags=["fhir"])
RANKING_EXTENSION = "urn:harmony:fhir:StructureDefinition:slot-ranking"
ALIASES = {"provider": "practitioner", "service-type": "visit-type", "visit_type": "visit-type"}
KNOWN = frozenset({"start", "end", "practitioner", "location", "visit-type", "patient", "_count"})
MAX_COUNT = 20


def find_parameters(body: Any) -> dict[str, list[Any]]:
    """Parameter name -> its values (as plain strings, ints or references)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError(400, "invalid", "$find takes a Parameters resource")
    found: dict[str, list[Any]] = {}
    for param in body.get("parameter") or []:
        name = ALIASES.get(str(param.get("name")), str(param.get("name")))
        if name not in KNOWN:
            raise FhirError(400, "not-supported", f"unknown $find parameter {name!r}")
        found.setdefault(name, []).append(_value(name, param))
    return found


def _value(name: str, param: dict[str, Any]) -> Any:
    for key, value in param.items():
        if not key.startswith("value"):
            continue
        if key == "valueReference":
            return str(value.get("reference", ""))
        if key in ("valueCodeableConcept", "valueCoding"):
            codings = value.get("coding") or [value]
            code = next((c.get("code") for c in codings if c.get("code")), None)
            return code or value.get("text") or value.get("display")
        return value
    raise FhirError(400, "invalid", f"$find parameter {name!r} has no value")


def _instant(name: str, values: list[Any]) -> datetime | None:
    if not values:
        return None
    try:
        parsed = datetime.fromisoformat(str(values[0]).replace("Z", "+00:00"))
    except ValueError:
        raise FhirError(400, "invalid", f"{name}: not a dateTime: {values[0]!r}") from None
    if parsed.tzinfo is None:
        raise FhirError(400, "invalid", f"{name}: give a UTC offset")
    return parsed


def _ref(kind: str, value: str) -> str:
    return value if value.startswith(f"{kind}/") else f"{kind}/{value}"


def proposed(pick: RankedSlot, patient_id: str | None, visit_type: str | None) -> dict[str, Any]:
    """A proposed, unstored Appointment for one ranked slot."""
    c = pick.candidate
    participants = []
    if c.practitioner_id:
        participants.append({"actor": {"reference": c.practitioner_id}, "status": "needs-action"})
    if c.place and c.place.key.startswith("Location/"):
        location = {"reference": c.place.key, **({"display": c.place.name} if c.place.name else {})}
        participants.append({"actor": location, "status": "needs-action"})
    if patient_id:
        participants.append({"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"})
    comment = "Meets: " + ("; ".join(r.text for r in pick.meets) or "no stated preference")
    if pick.trades_off:
        comment += ". Trades off: " + "; ".join(r.text for r in pick.trades_off)
    ranking = [{"url": "score", "valueDecimal": pick.score}]
    ranking += [{"url": "meets", "valueCode": r.code} for r in pick.meets]
    ranking += [{"url": "trades-off", "valueCode": r.code} for r in pick.trades_off]
    appointment: dict[str, Any] = {
        "resourceType": "Appointment",
        "extension": [{"url": RANKING_EXTENSION, "extension": ranking}],
        "status": "proposed",
        "start": c.start.isoformat().replace("+00:00", "Z"),
        "end": c.end.isoformat().replace("+00:00", "Z"),
        "slot": [{"reference": f"Slot/{c.slot_id}"}],
        "comment": comment,
        "participant": participants,
    }
    if visit_type:
        appointment["serviceType"] = [{"text": visit_type}]
    return appointment


@router.post("/Appointment/$find")
async def find(
    request: Request, session: SessionDep, settings: SettingsDep, who: BookingPrincipal
) -> Response:
    body = await json_body(request)
    params = find_parameters(body)
    patients = [str(p).removeprefix("Patient/") for p in params.get("patient", [])]
    patient_id = for_patient(who, patients[0] if patients else None)
    visit_type = str(params["visit-type"][0]) if params.get("visit-type") else None
    try:
        count = int(params.get("_count", [3])[0])
        prefs = PreferencesIn(
            visit_type=visit_type,
            only_practitioners=[
                _ref("Practitioner", str(v)) for v in params.get("practitioner", [])
            ],
            only_locations=[_ref("Location", str(v)) for v in params.get("location", [])],
        )
    except (ValueError, ValidationError) as exc:
        raise FhirError(400, "invalid", str(exc)) from None
    if not 1 <= count <= MAX_COUNT:
        raise FhirError(400, "invalid", f"_count must be 1..{MAX_COUNT}")
    window = (_instant("start", params.get("start", [])), _instant("end", params.get("end", [])))
    try:
        ranking, _ = ranked_for(session, prefs, count, window, patient_id, settings)
    except HTTPException as exc:
        raise FhirError(exc.status_code, "invalid", str(exc.detail)) from None
    best = ranking.picks[0].score if ranking.picks else 0.0
    entries = []
    for pick in ranking.picks:
        resource = proposed(pick, patient_id, visit_type)
        score = round(pick.score / best, 4) if best > 0 else 1.0
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, pick.candidate.slot_id)}",
                "resource": resource,
                "search": {"mode": "match", "score": min(1.0, max(0.0, score))},
            }
        )
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(entries),
        "entry": entries,
    }
    return FhirResponse(bundle)
