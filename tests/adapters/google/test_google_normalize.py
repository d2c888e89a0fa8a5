"""Every Google fixture read for what it is; events pages normalized to canonical records."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.google.errors import GoogleErrorBody
from adapters.google.events import BOOKED_SLOT_URL, RECURRING_EVENT_URL, MalformedEvent
from adapters.google.normalize import normalize_bytes
from adapters.google.push import PushTokenMismatch, read_channel, read_push
from canonical.errors import NothingToStore, RejectedInput
from mappings.model import Coding, Crosswalk, MappingContent, MappingSet, UnmappedCode
from tests.adapters.google.google_inputs import calendar, checked, fixture, fixture_json, wrap

USER = "test.user@gmail.com"
CHICAGO = calendar(USER, "America/Chicago", practitioner="Test User")
EVENT = "urn:harmony:gcal:event"


def events_page(items: list[dict[str, Any]], cal: dict[str, Any] = CHICAGO) -> bytes:
    body = {"kind": "calendar#events", "items": items, "nextSyncToken": "t"}
    return wrap("events", body, {"calendar": cal, "listing": "incremental"})


def appointments(bundle: Any) -> dict[str, dict[str, Any]]:
    return {
        r.identifiers[0].value: r.resource
        for r in bundle.records
        if r.resource_type == "Appointment"
    }


def test_single_instance_edit(mapping: MappingSet) -> None:
    raw = wrap(
        "events",
        fixture_json("compass_events_list_single_instance_edit.json"),
        {"calendar": CHICAGO},
    )
    bundle = checked(normalize_bytes(raw, mapping, "UTC"))
    assert bundle.notes == [
        "event 68k0p6ackplecqs9fuvbs1fju0 is a recurring series; its instances are synced"
    ]
    [(key, appt)] = appointments(bundle).items()
    assert key == f"{USER}/68k0p6ackplecqs9fuvbs1fju0_20250324T123000Z"
    assert appt["status"] == "booked"
    assert (appt["start"], appt["end"], appt["minutesDuration"]) == (
        "2025-03-24T17:30:00Z",
        "2025-03-24T18:15:00Z",
        45,
    )
    assert appt["description"] == "🍽️ Dishes (Modified)"
    assert {"url": RECURRING_EVENT_URL, "valueString": "68k0p6ackplecqs9fuvbs1fju0"} in appt[
        "extension"
    ]
    assert appt["participant"][0]["actor"]["reference"] == (
        f"Practitioner?identifier=urn:harmony:gcal:calendar|{USER}"
    )
    slot = next(r for r in bundle.records if r.resource_type == "Slot")
    assert slot.identifiers[0].value == f"{USER}/event/68k0p6ackplecqs9fuvbs1fju0_20250324T123000Z"
    assert slot.resource["status"] == "busy"
    assert slot.original_time_text == "2025-03-24T12:30:00-05:00"
    assert [r.resource_type for r in bundle.records] == [
        "Practitioner", "Schedule", "Slot", "Appointment",
    ]  # fmt: skip


def test_this_and_following_edit(mapping: MappingSet) -> None:
    raw = wrap(
        "events", fixture_json("compass_events_list_this_and_following.json"), {"calendar": CHICAGO}
    )
    bundle = checked(normalize_bytes(raw, mapping, "UTC"))
    found = appointments(bundle)
    assert sorted(found) == [
        f"{USER}/3i234gl45i6i1s8rpui7dleor0_20250315T131500Z",
        f"{USER}/3i234gl45i6i1s8rpui7dleor0_20250319T131500Z",
    ]
    assert found[f"{USER}/3i234gl45i6i1s8rpui7dleor0_20250319T131500Z"]["start"] == (
        "2025-03-20T21:30:00Z"
    )
    # The truncated series and the new 'this and following' series are both masters.
    assert len(bundle.notes) == 2
    assert all("recurring series" in note for note in bundle.notes)


def test_calendar_list_is_not_an_events_page(mapping: MappingSet) -> None:
    raw = wrap("events", fixture_json("gcalcli_calendarlist_response.json"), {"calendar": CHICAGO})
    with pytest.raises(RejectedInput, match="calendar#calendarList, not calendar#events"):
        normalize_bytes(raw, mapping, "UTC")


def test_discovery_document_is_not_calendar_data(mapping: MappingSet) -> None:
    raw = wrap("events", fixture_json("calendar_v3_discovery_2018.json"), {"calendar": CHICAGO})
    with pytest.raises(RejectedInput, match="discovery#restDescription, not calendar#events"):
        normalize_bytes(raw, mapping, "UTC")


def test_watch_response_is_read_as_a_channel() -> None:
    channel = read_channel(fixture_json("docs_events_watch_response.json"))
    assert channel.id == "01234567-89ab-cdef-0123456789ab"
    assert channel.resource_id == "o3hgv1538sdjfh"
    assert channel.token == "target=myApp-myCalendarChannelDest"
    assert channel.expiration is not None
    assert channel.expiration.isoformat() == "2015-03-14T09:26:53+00:00"
    # The discovery document types expiration as an int64 string: both read the same.
    as_string = {**fixture_json("docs_events_watch_response.json"), "expiration": "1426325213000"}
    assert read_channel(as_string).expiration == channel.expiration


def test_watch_request_is_not_a_channel_answer() -> None:
    with pytest.raises(RejectedInput, match="api#channel"):
        read_channel(fixture_json("docs_events_watch_request.json"))


def push_headers() -> dict[str, str]:
    head = fixture("docs_push_notification_sync.http").decode()
    request_line, *lines = head.split("\r\n")
    assert request_line == "POST https://mydomain.com/notifications"
    return dict(line.split(": ", 1) for line in lines if line)


def test_push_sync_notification_is_the_handshake() -> None:
    notice = read_push(push_headers(), "channel-token-value")
    assert notice.resource_state == "sync"
    assert not notice.needs_sync
    assert notice.message_number == 1
    assert notice.channel_id == "channel-ID-value"
    assert notice.resource_id == "identifier-for-the-watched-resource"
    assert notice.resource_uri == "version-specific-URI-of-the-watched-resource"


def test_push_with_another_token_is_refused() -> None:
    with pytest.raises(PushTokenMismatch, match="X-Goog-Channel-Token"):
        read_push(push_headers(), "someone-else")
    headers = {k: v for k, v in push_headers().items() if k != "X-Goog-Channel-Token"}
    with pytest.raises(PushTokenMismatch):
        read_push(headers, "channel-token-value")


def test_push_exists_means_sync_and_header_case_does_not_matter() -> None:
    headers = {k.lower(): v for k, v in push_headers().items()}
    headers["x-goog-resource-state"] = "exists"
    headers["x-goog-message-number"] = "7"
    notice = read_push(headers, "channel-token-value")
    assert notice.needs_sync and notice.message_number == 7


def test_push_with_unknown_state_is_refused() -> None:
    headers = {**push_headers(), "X-Goog-Resource-State": "maybe"}
    with pytest.raises(RejectedInput, match="maybe"):
        read_push(headers, "channel-token-value")


def test_webhook_envelope_is_nothing_to_store(mapping: MappingSet) -> None:
    raw = wrap("webhook", None, {"headers": push_headers()})
    with pytest.raises(NothingToStore, match="no body"):
        normalize_bytes(raw, mapping, "UTC")


def test_google_error_body_is_rejected_with_its_words(mapping: MappingSet) -> None:
    message = "Sync token is no longer valid, a full sync is required."
    body = {
        "error": {
            "errors": [{"domain": "calendar", "reason": "fullSyncRequired", "message": message}],
            "code": 410,
            "message": message,
        }
    }
    with pytest.raises(GoogleErrorBody, match="410 fullSyncRequired: Sync token is no longer"):
        normalize_bytes(wrap("events", body, {"calendar": CHICAGO}), mapping, "UTC")


def test_unknown_kind_and_foreign_bytes_are_rejected(mapping: MappingSet) -> None:
    with pytest.raises(RejectedInput, match="'calendar-list'"):
        normalize_bytes(wrap("calendar-list", {}, {}), mapping, "UTC")
    with pytest.raises(RejectedInput, match="not a Harmony envelope"):
        normalize_bytes(fixture("docs_events_watch_request.json"), mapping, "UTC")


def test_empty_events_page_is_nothing_to_store(mapping: MappingSet) -> None:
    with pytest.raises(NothingToStore, match="no events"):
        normalize_bytes(events_page([]), mapping, "UTC")


def test_event_without_start_is_rejected(mapping: MappingSet) -> None:
    item = {
        "kind": "calendar#event",
        "id": "abc",
        "status": "confirmed",
        "end": {"date": "2025-01-02"},
    }
    with pytest.raises(RejectedInput, match="event abc start is missing"):
        normalize_bytes(events_page([item]), mapping, "UTC")
    with pytest.raises(MalformedEvent, match="no id"):
        normalize_bytes(events_page([{"status": "confirmed"}]), mapping, "UTC")


def timed(event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "calendar#event",
        "id": event_id,
        "status": "confirmed",
        "summary": "Visit",
        "start": {"dateTime": "2025-07-01T10:00:00-05:00", "timeZone": "America/Chicago"},
        "end": {"dateTime": "2025-07-01T10:30:00-05:00", "timeZone": "America/Chicago"},
        **extra,
    }


def test_all_day_transparent_and_cancelled_events(mapping: MappingSet) -> None:
    items = [
        {
            "kind": "calendar#event",
            "id": "allday",
            "status": "confirmed",
            "start": {"date": "2025-07-02"},
            "end": {"date": "2025-07-03"},
        },
        timed("free", transparency="transparent"),
        timed("gone", status="cancelled"),
        {"kind": "calendar#event", "etag": '"1"', "id": "deleted", "status": "cancelled"},
    ]
    bundle = checked(normalize_bytes(events_page(items), mapping, "UTC"))
    assert bundle.notes == ["event allday is an all-day event: it blocks no slots"]
    found = appointments(bundle)
    assert set(found) == {f"{USER}/free", f"{USER}/gone", f"{USER}/deleted"}
    assert "slot" not in found[f"{USER}/free"]  # transparent: blocks nothing
    assert found[f"{USER}/gone"]["status"] == "cancelled"
    assert found[f"{USER}/gone"]["participant"][0]["status"] == "declined"
    assert found[f"{USER}/deleted"]["status"] == "cancelled"
    assert "start" not in found[f"{USER}/deleted"]
    slots = {
        r.identifiers[0].value: r.resource["status"]
        for r in bundle.records
        if r.resource_type == "Slot"
    }
    assert slots == {f"{USER}/event/gone": "free"}


def test_booked_event_names_its_slot_patient_and_type(mapping: MappingSet) -> None:
    private = {
        "harmonySlot": f"{USER}/2025-07-01T15:00:00Z",
        "harmonyPatient": "urn:oid:1.2.3|MRN42",
        "harmonyAppointmentType": "FOLLOWUP",
    }
    item = timed("booked1", extendedProperties={"private": private}, description="knee")
    bundle = checked(normalize_bytes(events_page([item]), mapping, "UTC"))
    appt = appointments(bundle)[f"{USER}/booked1"]
    assert {"url": BOOKED_SLOT_URL, "valueString": private["harmonySlot"]} in appt["extension"]
    assert appt["participant"][1]["actor"]["reference"] == "Patient?identifier=urn:oid:1.2.3|MRN42"
    assert appt["appointmentType"] == {"text": "FOLLOWUP"}
    assert appt["comment"] == "knee"
    assert bundle.unmapped == [("appointment_types", "FOLLOWUP")]

    content = mapping.content.model_copy(
        update={"appointment_types": {"FOLLOWUP": Coding(system="urn:types", code="FU")}}
    )
    typed = MappingSet(source="google", version=2, content=content)
    appt = appointments(normalize_bytes(events_page([item]), typed, "UTC"))[f"{USER}/booked1"]
    assert appt["appointmentType"]["coding"] == [{"system": "urn:types", "code": "FU"}]


def test_provider_crosswalk_adds_the_canonical_identifier() -> None:
    content = MappingContent(
        status={"confirmed": "booked"},
        providers={USER: Crosswalk(system="http://hl7.org/fhir/sid/us-npi", value="1234567893")},
    )
    bundle = normalize_bytes(
        events_page([timed("x")]), MappingSet(source="google", version=3, content=content), "UTC"
    )
    practitioner = bundle.records[0]
    assert practitioner.identifiers[1].value == "1234567893"


def test_unmapped_event_status_is_reported(mapping: MappingSet) -> None:
    content = MappingContent(status={"confirmed": "booked"})
    with pytest.raises(UnmappedCode, match="'tentative'"):
        normalize_bytes(
            events_page([timed("t", status="tentative")]),
            MappingSet(source="google", version=4, content=content),
            "UTC",
        )
