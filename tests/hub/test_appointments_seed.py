"""Slots and patients for the appointment tests (helpers only; it holds no tests).

Slots come in the way clinics without an API send them (a CSV upload, through the worker),
or as GMED-identified slots; patients are canonical Patients written through the hub.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from adapters.contract import Envelope
from canonical.repository import CanonicalRepository
from canonical.search import search
from hub import message_store
from hub.message_store import INBOUND, NewMessage
from hub.runtime import HubRuntime
from hub.settings import Settings

CSV_HEADER = "practitioner,start,end\n"


def runtime_for(engine: Engine, **settings: Any) -> HubRuntime:
    url = engine.url.render_as_string(hide_password=False)
    return HubRuntime(Settings(database_url=url, default_timezone="UTC", **settings), engine)


def upload(runtime: HubRuntime, rows: list[tuple[str, str, str]], label: str = "clinic-a") -> None:
    """Upload ``(practitioner, start, end)`` rows as free slots and normalize them now."""
    csv = CSV_HEADER + "".join(f"{who},{start},{end}\n" for who, start, end in rows)
    raw = Envelope(label, "upload", "csv", f"upload {label}", csv, {}, "").to_bytes()
    message = NewMessage(channel="upload", direction=INBOUND, raw=raw, control_id=label)
    with runtime.engine.begin() as conn:
        message_id = message_store.store_in(conn, message).id
    assert runtime.worker.process_inbound(message_id) == "processed"


def free_slots(runtime: HubRuntime) -> list[str]:
    """Ids of the free slots, earliest first."""
    with Session(runtime.engine) as session:
        found = search(session, "Slot", [("status", "free"), ("_count", "100")])
    return [str(s["id"]) for s in found.resources]


def patient(runtime: HubRuntime, family: str) -> str:
    resource = {"resourceType": "Patient", "name": [{"family": family}]}
    return runtime.save_change("Patient", resource, source_system="harmony").id


def read(runtime: HubRuntime, resource_type: str, resource_id: str) -> dict[str, Any]:
    with Session(runtime.engine) as session:
        resource = CanonicalRepository(session).get(resource_type, resource_id)
    assert resource is not None, f"{resource_type}/{resource_id}"
    return resource


def gmed_slot(runtime: HubRuntime, start: str, end: str) -> str:
    """A free slot GMED owns (its identifiers), so bookings on it go out as SIU."""
    practitioner = runtime.save_change(
        "Practitioner",
        {
            "resourceType": "Practitioner",
            "identifier": [{"system": "urn:harmony:gmed:provider", "value": "P1"}],
            "name": [{"text": "Dr Gale"}],
        },
        source_system="gmed",
    )
    schedule = runtime.save_change(
        "Schedule",
        {
            "resourceType": "Schedule",
            "identifier": [{"system": "urn:harmony:gmed:schedule", "value": "P1"}],
            "actor": [{"reference": f"Practitioner/{practitioner.id}", "display": "Dr Gale"}],
        },
        source_system="gmed",
    )
    slot = runtime.save_change(
        "Slot",
        {
            "resourceType": "Slot",
            "identifier": [{"system": "urn:harmony:gmed:slot", "value": f"S-{start}"}],
            "schedule": {"reference": f"Schedule/{schedule.id}"},
            "status": "free",
            "start": start,
            "end": end,
        },
        source_system="gmed",
    )
    return slot.id
