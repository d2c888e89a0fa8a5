"""Every route has a policy, and every role is let through or refused as the policy says.

POLICY is the one table: (method, path template) -> cases, each a concrete request and the
roles allowed to make it. A route in the app that is not in the table fails
``test_every_route_has_a_policy``, so a new endpoint cannot ship without a decision. For an
allowed role any status but 401/403 counts as let through (404, 409, 415, 422 included:
the ids are valid-looking but mostly unknown); for the others the answer must be 401/403
(anonymous: 401).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app import create_app
from canonical.repository import CanonicalRepository
from hub.runtime import HubRuntime
from hub.settings import Settings
from hub.tokens import TokenService
from hub.users import create_user
from tests.canonical.canonical_seed import provenance, siu_bundle

ROLES = ("admin", "physician", "staff", "call_center", "integration", "patient")
EVERYONE = frozenset({*ROLES, "anonymous"})
SIGNED_IN = frozenset(ROLES)
ADMIN = frozenset({"admin"})
ENGINE = frozenset({"admin", "integration"})
UPLOAD = frozenset({"admin", "staff", "integration"})
BOOK = frozenset({"admin", "staff", "integration", "patient"})
BOOK_FOR_OTHERS = BOOK - {"patient"}
STAFF_READ = frozenset({"admin", "staff", "physician", "call_center", "integration"})
READ = STAFF_READ | {"patient"}
ROSTER_READ = frozenset({"admin", "physician", "staff", "call_center"})
PHYSICIAN = frozenset({"physician"})


@dataclass(frozen=True)
class Case:
    """One concrete request (``path`` may name seeded ids in braces) and who may make it."""

    path: str
    allowed: frozenset[str]
    json: Any = None
    note: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    """An endless response (SSE): only refusals are checked here; the stream tests show the
    allowed roles reading it."""


def book_body(patient: str | None) -> dict[str, Any]:
    participants = [{"actor": {"reference": f"Patient/{patient}"}}] if patient else []
    return {
        "resourceType": "Appointment",
        "status": "proposed",
        "slot": [{"reference": "Slot/no-such-slot"}],
        "participant": participants,
    }


POLICY: dict[tuple[str, str], list[Case]] = {
    # documentation and health: public
    ("GET", "/openapi.json"): [Case("/openapi.json", EVERYONE)],
    ("GET", "/docs"): [Case("/docs", EVERYONE)],
    ("GET", "/docs/oauth2-redirect"): [Case("/docs/oauth2-redirect", EVERYONE)],
    ("GET", "/redoc"): [Case("/redoc", EVERYONE)],
    ("GET", "/health"): [Case("/health", EVERYONE)],
    # FHIR: staff-side readers see everything; a patient what they book from and their own
    ("GET", "/fhir/metadata"): [Case("/fhir/metadata", EVERYONE, note="CapabilityStatement")],
    ("GET", "/fhir/{resource_type}"): [
        Case("/fhir/Slot", READ),
        Case("/fhir/Schedule", READ),
        Case("/fhir/Appointment", READ, note="patient: narrowed to their own"),
        Case("/fhir/Patient", READ, note="patient: narrowed to themselves"),
        Case("/fhir/PractitionerRole", STAFF_READ),
    ],
    ("GET", "/fhir/{resource_type}/{resource_id}"): [
        Case("/fhir/Slot/{slot}", READ),
        Case("/fhir/Practitioner/{practitioner}", READ),
        Case("/fhir/Location/{location}", READ),
        Case("/fhir/Appointment/{own_appointment}", READ, note="patient: takes part"),
        Case("/fhir/Appointment/{other_appointment}", STAFF_READ),
        Case("/fhir/Patient/{own_patient}", READ),
        Case("/fhir/Patient/{other_patient}", STAFF_READ),
    ],
    ("GET", "/fhir/{resource_type}/{resource_id}/_history"): [
        Case("/fhir/Appointment/{own_appointment}/_history", READ),
        Case("/fhir/Appointment/{other_appointment}/_history", STAFF_READ),
    ],
    ("GET", "/fhir/{resource_type}/{resource_id}/_history/{version_id}"): [
        Case("/fhir/Appointment/{own_appointment}/_history/1", READ),
        Case("/fhir/Appointment/{other_appointment}/_history/1", STAFF_READ),
    ],
    ("POST", "/fhir/Appointment/$book"): [
        Case("/fhir/Appointment/$book", BOOK, json=book_body(None), note="patient: themselves"),
        Case("/fhir/Appointment/$book", BOOK, json=book_body("{own_patient}")),
        Case("/fhir/Appointment/$book", BOOK_FOR_OTHERS, json=book_body("{other_patient}")),
    ],
    ("POST", "/api/slots/rank"): [
        Case("/api/slots/rank", BOOK, json={"k": 3}, note="patient: themselves"),
        Case("/api/slots/rank", BOOK, json={"patient_id": "{own_patient}"}),
        Case("/api/slots/rank", BOOK_FOR_OTHERS, json={"patient_id": "{other_patient}"}),
    ],
    # the waitlist: a patient for themselves only; someone else's or an absent entry or
    # offer is 403 for them alike (tests/api/test_waitlist_api.py shows their own)
    ("POST", "/api/waitlist"): [
        Case("/api/waitlist", BOOK, json={}, note="patient: themselves; others: 422"),
        Case("/api/waitlist", BOOK, json={"patient_id": "{own_patient}"}),
        Case("/api/waitlist", BOOK_FOR_OTHERS, json={"patient_id": "{other_patient}"}),
    ],
    ("GET", "/api/waitlist"): [
        Case("/api/waitlist", BOOK, note="patient: narrowed to their own"),
        Case("/api/waitlist?patient_id={other_patient}", BOOK, note="patient: still their own"),
    ],
    ("GET", "/api/waitlist/{entry_id}"): [Case("/api/waitlist/999999", BOOK_FOR_OTHERS)],
    ("DELETE", "/api/waitlist/{entry_id}"): [Case("/api/waitlist/999999", BOOK_FOR_OTHERS)],
    ("GET", "/api/waitlist/offers"): [
        Case("/api/waitlist/offers", BOOK, note="patient: narrowed to their own")
    ],
    ("POST", "/api/waitlist/offers/{offer_id}/accept"): [
        Case("/api/waitlist/offers/999999/accept", BOOK_FOR_OTHERS)
    ],
    ("POST", "/api/waitlist/offers/{offer_id}/decline"): [
        Case("/api/waitlist/offers/999999/decline", BOOK_FOR_OTHERS)
    ],
    ("POST", "/fhir/Appointment/$find"): [
        Case(
            "/fhir/Appointment/$find",
            BOOK,
            json={"resourceType": "Parameters", "parameter": []},
            note="patient: themselves",
        ),
        Case(
            "/fhir/Appointment/$find",
            BOOK,
            json={
                "resourceType": "Parameters",
                "parameter": [{"name": "patient", "valueString": "{own_patient}"}],
            },
        ),
        Case(
            "/fhir/Appointment/$find",
            BOOK_FOR_OTHERS,
            json={
                "resourceType": "Parameters",
                "parameter": [{"name": "patient", "valueString": "{other_patient}"}],
            },
        ),
    ],
    ("POST", "/api/appointments"): [
        Case("/api/appointments", BOOK, json={"slot_id": "no-such-slot"}),
        Case(
            "/api/appointments",
            BOOK_FOR_OTHERS,
            json={"slot_id": "no-such-slot", "patient_id": "{other_patient}"},
        ),
    ],
    ("POST", "/api/appointments/{appointment_id}/cancel"): [
        Case(
            "/api/appointments/{own_appointment}/cancel",
            BOOK,
            json={"reason": "moved away"},
            note="patient: takes part; a repeated cancel answers it again",
        ),
        Case(
            "/api/appointments/{other_appointment}/cancel",
            BOOK_FOR_OTHERS,
            json={"reason": {"code": "pat"}},
        ),
    ],
    ("POST", "/api/appointments/{appointment_id}/reschedule"): [
        Case(
            "/api/appointments/{own_appointment}/reschedule",
            BOOK,
            json={"slot_id": "no-such-slot"},
            note="patient: takes part",
        ),
        Case(
            "/api/appointments/{other_appointment}/reschedule",
            BOOK_FOR_OTHERS,
            json={"slot_id": "no-such-slot"},
        ),
    ],
    ("GET", "/api/appointments/cancellations"): [
        Case("/api/appointments/cancellations", ENGINE, note="cancels a reschedule left queued")
    ],
    ("POST", "/api/availability/{label}"): [Case("/api/availability/clinic-a", UPLOAD)],
    # the integration engine
    ("GET", "/api/messages"): [Case("/api/messages", ENGINE)],
    ("GET", "/api/messages/stats"): [Case("/api/messages/stats", ENGINE)],
    ("GET", "/api/messages/{message_id}"): [Case("/api/messages/999", ENGINE)],
    ("GET", "/api/messages/{message_id}/raw"): [Case("/api/messages/999/raw", ENGINE)],
    ("GET", "/api/messages/{message_id}/ack"): [Case("/api/messages/999/ack", ENGINE)],
    ("POST", "/api/messages/{message_id}/replay"): [Case("/api/messages/999/replay", ENGINE)],
    ("POST", "/api/messages/replay"): [Case("/api/messages/replay", ENGINE, json={"ids": [999]})],
    ("GET", "/api/mappings"): [Case("/api/mappings", ENGINE)],
    ("GET", "/api/mappings/unmapped"): [Case("/api/mappings/unmapped", ENGINE)],
    ("GET", "/api/mappings/{source}"): [Case("/api/mappings/nosuch", ENGINE)],
    ("GET", "/api/mappings/{source}/versions"): [Case("/api/mappings/nosuch/versions", ENGINE)],
    ("POST", "/api/mappings/{source}/versions"): [
        Case("/api/mappings/nosuch/versions", ENGINE, json={})
    ],
    ("GET", "/api/mappings/{source}/versions/{version}"): [
        Case("/api/mappings/nosuch/versions/1", ENGINE)
    ],
    ("POST", "/api/mappings/{source}/versions/{version}/activate"): [
        Case("/api/mappings/nosuch/versions/1/activate", ENGINE)
    ],
    ("POST", "/api/mappings/{source}/rollback"): [Case("/api/mappings/nosuch/rollback", ENGINE)],
    ("GET", "/api/mappings/{source}/diff"): [Case("/api/mappings/nosuch/diff", ENGINE)],
    ("GET", "/api/mappings/{source}/unmapped"): [Case("/api/mappings/nosuch/unmapped", ENGINE)],
    ("GET", "/api/integrations"): [Case("/api/integrations", ENGINE)],
    ("POST", "/api/integrations"): [Case("/api/integrations", ENGINE, json={})],
    ("GET", "/api/integrations/{name}"): [Case("/api/integrations/nosuch", ENGINE)],
    ("PATCH", "/api/integrations/{name}"): [Case("/api/integrations/nosuch", ENGINE, json={})],
    ("DELETE", "/api/integrations/{name}"): [Case("/api/integrations/nosuch", ENGINE)],
    ("POST", "/api/integrations/{name}/sync"): [Case("/api/integrations/nosuch/sync", ENGINE)],
    # sources: public keys for Epic, webhooks authenticated by their signature (not a role)
    ("GET", "/.well-known/jwks/{name}.json"): [Case("/.well-known/jwks/nosuch.json", EVERYONE)],
    ("POST", "/webhooks/{name}"): [Case("/webhooks/nosuch", EVERYONE, json={}, note="HMAC")],
    # sign-in, and the audit log
    ("POST", "/api/auth/token"): [
        Case("/api/auth/token", EVERYONE, json={"username": "login", "password": "pw"})
    ],
    ("POST", "/api/auth/refresh"): [
        Case("/api/auth/refresh", EVERYONE, json={"refresh_token": "{refresh_token}"})
    ],
    ("GET", "/api/auth/me"): [Case("/api/auth/me", SIGNED_IN)],
    ("GET", "/api/audit"): [Case("/api/audit", ADMIN)],
}

# ----------------------------------------------------------------------------------------
# Shifts, rosters, the live roster and notifications. Physicians act only on their own
# shifts and requests (the ownership tests in tests/api/test_shifts_api.py show the 403s);
# call_center reads the roster and changes nothing. Updates need If-Match (428 otherwise):
# a 428 or 404 for an allowed role still counts as let through.
# ----------------------------------------------------------------------------------------
IF_MATCH = {"If-Match": 'W/"1"'}
LEAD_POLICY: dict[tuple[str, str], list[Case]] = {
    ("GET", "/api/physicians"): [Case("/api/physicians", ROSTER_READ)],
    ("POST", "/api/physicians"): [Case("/api/physicians", ADMIN, json={})],
    ("GET", "/api/physicians/{physician_id}"): [
        Case("/api/physicians/1", ROSTER_READ, note="a physician reads their own profile"),
        Case("/api/physicians/999", ROSTER_READ - PHYSICIAN, note="not another's"),
    ],
    ("PATCH", "/api/physicians/{physician_id}"): [
        Case("/api/physicians/999", ADMIN, json={}, headers=IF_MATCH)
    ],
    ("GET", "/api/shift-types"): [Case("/api/shift-types", ROSTER_READ)],
    ("POST", "/api/shift-types"): [Case("/api/shift-types", ADMIN, json={})],
    ("GET", "/api/shift-types/{type_id}"): [Case("/api/shift-types/999", ROSTER_READ)],
    ("PATCH", "/api/shift-types/{type_id}"): [
        Case("/api/shift-types/999", ADMIN, json={}, headers=IF_MATCH)
    ],
    ("GET", "/api/rosters"): [Case("/api/rosters", ROSTER_READ)],
    ("POST", "/api/rosters"): [Case("/api/rosters", ADMIN, json={})],
    ("GET", "/api/rosters/{roster_id}"): [Case("/api/rosters/999", ROSTER_READ)],
    ("POST", "/api/rosters/{roster_id}/publish"): [
        Case("/api/rosters/999/publish", ADMIN, headers=IF_MATCH)
    ],
    ("POST", "/api/rosters/{roster_id}/generate"): [
        Case("/api/rosters/999/generate", ADMIN, json={}, note="422 before any job")
    ],
    ("GET", "/api/rosters/{roster_id}/generations"): [Case("/api/rosters/999/generations", ADMIN)],
    ("GET", "/api/roster-jobs/{job_id}"): [Case("/api/roster-jobs/999", ADMIN)],
    ("POST", "/api/roster-jobs/{job_id}/stop"): [Case("/api/roster-jobs/999/stop", ADMIN)],
    ("GET", "/api/roster-rules"): [Case("/api/roster-rules", ROSTER_READ)],
    ("PATCH", "/api/roster-rules"): [Case("/api/roster-rules", ADMIN, json={}, headers=IF_MATCH)],
    ("GET", "/api/roster-events"): [Case("/api/roster-events", ADMIN)],
    ("GET", "/api/shifts"): [Case("/api/shifts", ROSTER_READ)],
    ("POST", "/api/shifts"): [Case("/api/shifts", ADMIN, json={})],
    ("POST", "/api/shifts/bulk"): [Case("/api/shifts/bulk", ADMIN, json={})],
    ("GET", "/api/shifts/open"): [Case("/api/shifts/open", PHYSICIAN)],
    ("GET", "/api/me/shifts"): [Case("/api/me/shifts", PHYSICIAN)],
    ("GET", "/api/shifts/{shift_id}"): [Case("/api/shifts/999", ROSTER_READ)],
    ("PATCH", "/api/shifts/{shift_id}"): [
        Case("/api/shifts/999", ADMIN, json={}, headers=IF_MATCH)
    ],
    ("DELETE", "/api/shifts/{shift_id}"): [Case("/api/shifts/999", ADMIN, headers=IF_MATCH)],
    ("POST", "/api/shifts/{shift_id}/drop"): [
        Case("/api/shifts/999/drop", PHYSICIAN, headers=IF_MATCH, note="own shift only")
    ],
    ("POST", "/api/shifts/{shift_id}/pickup"): [Case("/api/shifts/999/pickup", PHYSICIAN)],
    ("POST", "/api/shifts/{shift_id}/swap"): [
        Case("/api/shifts/999/swap", PHYSICIAN, json={}, note="own shift only")
    ],
    ("GET", "/api/shift-requests"): [
        Case("/api/shift-requests", ADMIN | PHYSICIAN, note="a physician sees their own")
    ],
    ("GET", "/api/shift-requests/{request_id}"): [Case("/api/shift-requests/999", ROSTER_READ)],
    ("POST", "/api/shift-requests/{request_id}/accept"): [
        Case("/api/shift-requests/999/accept", PHYSICIAN, headers=IF_MATCH, note="counterparty")
    ],
    ("POST", "/api/shift-requests/{request_id}/decline"): [
        Case("/api/shift-requests/999/decline", PHYSICIAN, headers=IF_MATCH, note="counterparty")
    ],
    ("POST", "/api/shift-requests/{request_id}/withdraw"): [
        Case("/api/shift-requests/999/withdraw", PHYSICIAN, headers=IF_MATCH, note="requester")
    ],
    ("POST", "/api/shift-requests/{request_id}/approve"): [
        Case("/api/shift-requests/999/approve", ADMIN, headers=IF_MATCH)
    ],
    ("POST", "/api/shift-requests/{request_id}/reject"): [
        Case("/api/shift-requests/999/reject", ADMIN, headers=IF_MATCH)
    ],
    ("GET", "/api/roster/now"): [Case("/api/roster/now", ROSTER_READ)],
    ("GET", "/api/roster/stream"): [Case("/api/roster/stream", ROSTER_READ, stream=True)],
    ("POST", "/api/roster/session"): [Case("/api/roster/session", ROSTER_READ)],
    ("DELETE", "/api/roster/session"): [Case("/api/roster/session", EVERYONE, note="sign out")],
    ("GET", "/roster"): [Case("/roster", EVERYONE, note="the page; its data needs a role")],
    ("GET", "/api/notifications"): [Case("/api/notifications", SIGNED_IN, note="own only")],
    ("GET", "/api/notifications/unread-count"): [
        Case("/api/notifications/unread-count", SIGNED_IN)
    ],
    ("POST", "/api/notifications/{notification_id}/read"): [
        Case("/api/notifications/999/read", SIGNED_IN, note="own only: 404 otherwise")
    ],
    ("POST", "/api/notifications/read"): [Case("/api/notifications/read", SIGNED_IN, json={})],
    ("GET", "/api/notifications/stream"): [
        Case("/api/notifications/stream", SIGNED_IN, stream=True)
    ],
    ("GET", "/api/notifications/devices"): [Case("/api/notifications/devices", SIGNED_IN)],
    ("POST", "/api/notifications/devices"): [
        Case("/api/notifications/devices", SIGNED_IN, json={"token": "fcm-token"})
    ],
    ("DELETE", "/api/notifications/devices/{token}"): [
        Case("/api/notifications/devices/fcm-token", SIGNED_IN)
    ],
    ("GET", "/api/notifications/deliveries"): [Case("/api/notifications/deliveries", ADMIN)],
    ("POST", "/api/notifications/deliveries/retry"): [
        Case("/api/notifications/deliveries/retry", ADMIN, json={})
    ],
    ("GET", "/api/notifications/dispatcher"): [Case("/api/notifications/dispatcher", ADMIN)],
}


def app_routes(settings: Settings) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves (HEAD is implied by GET)."""
    app = create_app(settings)
    found = set()
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            if method != "HEAD" and route.path is not None:
                found.add((method, route.path))
    return found


def test_every_route_has_a_policy(tmp_path: Any) -> None:
    served = app_routes(Settings(database_url=f"sqlite:///{tmp_path / 'routes.db'}"))
    table = POLICY | LEAD_POLICY
    missing = sorted(served - table.keys())
    assert not missing, "routes without a row in tests/api/test_role_matrix.py:\n" + "\n".join(
        f"  {method} {path}" for method, path in missing
    )
    stale = sorted(table.keys() - served)
    assert not stale, f"rows for routes the app no longer serves: {stale}"


def seed(engine: Engine) -> dict[str, str]:
    """Two patients with an appointment each; the patient user is the first of them."""
    from datetime import UTC, datetime

    ids: dict[str, str] = {}
    start = datetime(2025, 4, 7, 9, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        repo = CanonicalRepository(session)
        for seq, (who, mrn) in enumerate((("own", "MRN1"), ("other", "MRN2")), 1):
            results = repo.apply(siu_bundle(f"APT-{who}", start, mrn=mrn), provenance(seq), seq)
            ids[f"{who}_patient"], ids[f"{who}_appointment"] = results[0].id, results[-1].id
            ids["practitioner"], ids["location"] = results[1].id, results[2].id
            ids["slot"] = results[4].id
    return ids


def fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value


def test_each_role_is_let_through_or_refused_as_the_table_says(runtime: HubRuntime) -> None:
    engine, settings = runtime.engine, runtime.settings
    ids = seed(engine)
    tokens = TokenService(settings.secret_key)
    bearer: dict[str, dict[str, str]] = {"anonymous": {}}
    for role in ROLES:
        user = create_user(
            engine,
            f"matrix-{role}",
            roles={role},
            physician_id=1 if role == "physician" else None,
            patient_id=ids["own_patient"] if role == "patient" else None,
        )
        bearer[role] = {"Authorization": f"Bearer {tokens.issue(user).access_token}"}
    login = create_user(engine, "login", roles={"staff"}, password="pw")
    ids["refresh_token"] = tokens.issue(login).refresh_token
    app = create_app(settings, engine=engine, runtime=runtime)
    wrong: list[str] = []
    checked = 0
    with TestClient(app, raise_server_exceptions=False) as client:
        for (method, template), cases in (POLICY | LEAD_POLICY).items():
            for case in cases:
                path, body = fill(case.path, ids), fill(case.json, ids)
                for role, headers in bearer.items():
                    if case.stream and role in case.allowed:
                        continue
                    answer = client.request(
                        method, path, json=body, headers={**headers, **case.headers}
                    )
                    checked += 1
                    refused = answer.status_code in (401, 403)
                    if role == "anonymous" and role not in case.allowed:
                        refused = answer.status_code == 401
                    if refused == (role in case.allowed):
                        verdict = "refused" if refused else "let through"
                        wrong.append(
                            f"{role:12} {method} {template} ({path}): {verdict}, "
                            f"{answer.status_code} {answer.text[:120]}"
                        )
    assert checked > 300
    assert not wrong, "role matrix mismatches:\n" + "\n".join(wrong)
