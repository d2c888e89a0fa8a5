"""The sandbox answers in the shapes Google's discovery document (2018 fixture) defines."""

from __future__ import annotations

from typing import Any

import pytest

from tests.adapters.google.conftest import Sandbox
from tests.adapters.google.google_inputs import fixture_json

DISCOVERY = fixture_json("calendar_v3_discovery_2018.json")
SCHEMAS = DISCOVERY["schemas"]
NEWER_THAN_2018 = {"Event": {"eventType"}}
"""Fields Google added after revision 20180515 (real 2025 answers carry them)."""


def undefined_keys(value: dict[str, Any], schema: str) -> set[str]:
    known = set(SCHEMAS[schema]["properties"]) | NEWER_THAN_2018.get(schema, set())
    return set(value) - known


def test_discovery_document_is_the_one_the_client_is_built_from() -> None:
    assert DISCOVERY["kind"] == "discovery#restDescription"
    assert (DISCOVERY["rootUrl"], DISCOVERY["servicePath"]) == (
        "https://www.googleapis.com/",
        "calendar/v3/",
    )
    methods = DISCOVERY["resources"]["events"]["methods"]
    assert methods["list"]["path"] == "calendars/{calendarId}/events"
    assert methods["watch"]["path"] == "calendars/{calendarId}/events/watch"
    assert DISCOVERY["resources"]["freebusy"]["methods"]["query"]["path"] == "freeBusy"
    assert DISCOVERY["resources"]["channels"]["methods"]["stop"]["path"] == "channels/stop"


@pytest.mark.parametrize(
    "name",
    [
        "compass_events_list_single_instance_edit.json",
        "compass_events_list_this_and_following.json",
    ],
)
def test_recorded_google_answers_fit_the_schema(name: str) -> None:
    body = fixture_json(name)
    assert undefined_keys(body, "Events") == set()
    for item in body["items"]:
        assert undefined_keys(item, "Event") == set()


def test_sandbox_answers_fit_the_schema(sandbox: Sandbox) -> None:
    client = sandbox.client(page_size=3)
    pages = list(client.sync(None))
    freebusy = pages[0].envelope.body
    assert undefined_keys(freebusy, "FreeBusyResponse") == set()
    for calendar in freebusy["calendars"].values():
        assert undefined_keys(calendar, "FreeBusyCalendar") == set()
    for page in pages[1:]:
        assert undefined_keys(page.envelope.body, "Events") == set()
        for item in page.envelope.body["items"]:
            assert undefined_keys(item, "Event") == set()
    watched = client.service.events().watch(
        calendarId=sandbox.calendars[0]["calendar_id"],
        body=fixture_json("docs_events_watch_request.json"),
    )
    channel = watched.execute()
    assert undefined_keys(channel, "Channel") == set()
    assert channel["token"] == "target=myApp-myCalendarChannelDest"
