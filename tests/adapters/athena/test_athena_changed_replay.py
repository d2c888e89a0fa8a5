"""Changes athena handed out but the hub never stored are asked for again.

athena marks what ``/appointments/changed`` hands out as processed. The cursor records when
the feed was last read and stored; a run re-reads (``showprocessedstartdatetime``) what was
handed out since shortly before then, so a page lost between athena's answer and the store
comes back. Choice for the healthy path: every incremental run makes that one replay request
(the hub cannot tell a lost page from a clean stop: both resume from the same cursor); it
re-reads only changes handed out within the overlap (default 10 s) before the last stored
read, and a replay that finds nothing yields no page. Lists already stored (the live feed,
open pages) are never read again.
"""

from __future__ import annotations

import re
from datetime import timedelta

import httpx

from adapters.athena.client import AthenaClient
from adapters.athena.sandbox_state import eastern_now
from adapters.contract import FetchedPage
from tests.adapters.athena.conftest import Served

PROCESSED = re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d$")


def changed_requests(served: Served) -> list[dict[str, str]]:
    return [r.query for r in served.state.requests if r.path.endswith("/appointments/changed")]


def replays(served: Served) -> list[dict[str, str]]:
    return [q for q in changed_requests(served) if "showprocessedstartdatetime" in q]


def ids(pages: list[FetchedPage]) -> list[str]:
    return [
        a["appointmentid"]
        for p in pages
        if p.envelope.kind == "appointments-changed"
        for a in p.envelope.body["appointments"]
    ]


def test_a_changed_page_lost_before_it_was_stored_comes_back(served: Served) -> None:
    state = served.state
    made = state.seed_slots(4)
    cursor = list(served.client(departmentids=["1"]).sync(None))[-1].cursor
    state.book(made[0].appointmentid, "77", None)
    state.book(made[1].appointmentid, "78", None)
    run = served.client(departmentids=["1"]).sync(cursor)
    lost = next(run)  # athena answered ...
    run.close()  # ... and the hub died before storing the page
    assert lost.envelope.kind == "appointments-changed" and "showprocessed" not in str(
        lost.envelope.request
    )
    assert ids([lost]) == [str(made[0].appointmentid), str(made[1].appointmentid)]
    assert not state.changes  # athena counts them as delivered
    state.requests.clear()
    resumed = list(served.client(departmentids=["1"]).sync(cursor))  # from the stored cursor
    assert [p.envelope.kind for p in resumed] == ["appointments-changed"] * 2 + [
        "appointments-open"
    ]
    replayed, live = resumed[0], resumed[1]
    assert "showprocessedstartdatetime" in replayed.envelope.request
    assert ids([replayed]) == ids([lost]) and ids([live]) == []
    (asked,) = replays(served)
    assert PROCESSED.match(asked["showprocessedstartdatetime"])
    assert PROCESSED.match(asked["showprocessedenddatetime"])
    assert "offset" in asked and "leaveunprocessed" not in asked


def test_a_page_lost_in_the_middle_of_the_changed_feed_comes_back(served: Served) -> None:
    state = served.state
    made = state.seed_slots(12)
    cursor = list(served.client(departmentids=["1"], page_size=5).sync(None))[-1].cursor
    for n, slot in enumerate(made):
        state.book(slot.appointmentid, str(100 + n), None)
    run = served.client(departmentids=["1"], page_size=5).sync(cursor)
    first = next(run)  # stored
    second = next(run)  # lost: the run dies before the hub stores it
    run.close()
    assert len(ids([first])) == len(ids([second])) == 5
    resumed = list(served.client(departmentids=["1"], page_size=5).sync(first.cursor))
    delivered = set(ids([first, *resumed]))
    assert delivered == {str(slot.appointmentid) for slot in made}
    replayed = [p for p in resumed if "showprocessed" in p.envelope.request]
    assert set(ids([second])) <= set(ids(replayed))


def test_a_run_resumed_after_its_changes_were_stored_does_not_replay(served: Served) -> None:
    state = served.state
    made = state.seed_slots(30)
    cursor = list(served.client(departmentids=["1"]).sync(None))[-1].cursor
    state.book(made[0].appointmentid, "77", None)
    state.age_processed(60)
    run = served.client(departmentids=["1"], page_size=10).sync(cursor)
    stored = [next(run), next(run)]  # the changes and the first open page are stored
    run.close()
    assert [p.envelope.kind for p in stored] == ["appointments-changed", "appointments-open"]
    state.requests.clear()
    rest = list(served.client(departmentids=["1"], page_size=10).sync(stored[-1].cursor))
    assert [p.envelope.kind for p in rest] == ["appointments-open"] * 2
    assert changed_requests(served) == []
    assert [r.query["offset"] for r in state.requests if r.path.endswith("/open")] == ["10", "20"]


def test_nothing_lost_means_one_empty_replay_and_nothing_read_twice(served: Served) -> None:
    state = served.state
    made = state.seed_slots(6)
    client = served.client(departmentids=["1"])
    cursor = list(client.sync(None))[-1].cursor
    state.book(made[0].appointmentid, "77", None)
    first = list(client.sync(cursor))
    assert [p.envelope.kind for p in first] == ["appointments-changed", "appointments-open"]
    assert ids(first) == [str(made[0].appointmentid)]
    # the next run comes later than the overlap: its replay finds nothing and yields nothing
    state.age_processed(60)
    state.book(made[1].appointmentid, "78", None)
    state.requests.clear()
    second = list(client.sync(first[-1].cursor))
    assert [p.envelope.kind for p in second] == ["appointments-changed", "appointments-open"]
    assert ids(second) == [str(made[1].appointmentid)]
    assert len(replays(served)) == 1 and len(changed_requests(served)) == 2
    # a run right after the last one re-reads only that overlap (harmless: upserts)
    third = list(client.sync(second[-1].cursor))
    assert ids(third) == [str(made[1].appointmentid)]


def test_the_overlap_is_an_option(served: Served) -> None:
    state = served.state
    made = state.seed_slots(3)
    client = served.client(departmentids=["1"], changed_overlap_seconds=0)
    cursor = list(client.sync(None))[-1].cursor
    state.book(made[0].appointmentid, "77", None)
    first = list(client.sync(cursor))
    state.age_processed(2)  # handed out two seconds before the last stored read
    state.requests.clear()
    again = list(client.sync(first[-1].cursor))
    assert ids(again) == [] and len(replays(served)) == 1


def _get(client: AthenaClient, **params: str) -> httpx.Response:
    return client.http.request("GET", f"{client.api}/appointments/changed", params=params)


def test_the_sandbox_replays_handed_out_changes_by_window(served: Served) -> None:
    state = served.state
    made = state.seed_slots(3)
    client = served.client(departmentids=["1"])
    list(client.sync(None))
    for slot in made:
        state.book(slot.appointmentid, "77", None)
    assert len(_get(client).json()["appointments"]) == 3
    assert _get(client).json()["appointments"] == []
    window = {
        "showprocessedstartdatetime": "01/01/2000 00:00:00",
        "showprocessedenddatetime": "12/31/2099 23:59:59",
        "limit": "2",
    }
    page = _get(client, **window).json()
    assert page["totalcount"] == 3 and len(page["appointments"]) == 2
    assert "offset=2" in page["next"]
    rest = client.http.request("GET", client.root + page["next"]).json()
    assert [a["appointmentid"] for a in page["appointments"] + rest["appointments"]] == [
        str(s.appointmentid) for s in made
    ]
    assert not state.changes  # replaying marks nothing and leaves nothing pending
    recent = (eastern_now() - timedelta(minutes=10)).strftime("%m/%d/%Y %H:%M:%S")
    assert len(_get(client, showprocessedstartdatetime=recent).json()["appointments"]) == 3
    state.age_processed(3600)  # handed out an hour ago: outside the last ten minutes
    assert _get(client, showprocessedstartdatetime=recent).json()["appointments"] == []
    bad = _get(client, showprocessedstartdatetime="2024-01-01T00:00:00")
    assert bad.status_code == 400 and "hh24:mi:ss" in bad.json()["error"]
