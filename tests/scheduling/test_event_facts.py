"""What roster events record when they are written: whether their roster was published (read
later, a draft's shift must still be a draft's), and what an approval tells GMED it was."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from scheduling.outbox import ShiftSnapshot
from scheduling.publish import publish_roster
from scheduling.requests import (
    answer_swap,
    decide_request,
    drop_shift,
    propose_swap,
    request_pickup,
)
from scheduling.roster_events import events_after
from scheduling.shifts import run_changes
from tests.scheduling.roster_seed import ADMIN, add_shift, context_for, seed


def _events(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return events_after(conn)


def test_events_record_whether_their_roster_was_published_when_written(engine: Engine) -> None:
    context = context_for(engine)
    clinic = seed(engine)
    draft = add_shift(engine, context, clinic, clinic.clinic, "2027-03-08", clinic.lee)
    other = add_shift(engine, context, clinic, clinic.clinic, "2027-03-10", clinic.patel)
    gone = add_shift(engine, context, clinic, clinic.clinic, "2027-03-11", None)
    edit = {"op": "edit", "id": draft["id"], "version": 1, "physician_id": clinic.kim}
    run_changes(engine, context, ADMIN, [edit])
    run_changes(engine, context, ADMIN, [{"op": "delete", "id": gone["id"], "version": 1}])
    written_as_draft = len(_events(engine))
    publish_roster(engine, context, ADMIN, clinic.roster, 1)
    late = add_shift(engine, context, clinic, clinic.clinic, "2027-03-15", clinic.lee)
    edit = {"op": "edit", "id": late["id"], "version": 1, "date": "2027-03-16"}
    run_changes(engine, context, ADMIN, [edit])

    events = _events(engine)
    # read after the publish, the draft's events still say they were a draft's
    before, after = events[:written_as_draft], events[written_as_draft:]
    assert [(e["kind"], e["detail"].get("published")) for e in before] == [
        ("roster_create", None),
        ("create", False),
        ("create", False),
        ("create", False),
        ("move", False),
        ("delete", False),
    ]
    assert [(e["kind"], e["detail"].get("published")) for e in after] == [
        ("publish", None),
        ("create", True),
        ("move", True),
    ]
    assert {draft["id"], other["id"]} <= {s for e in before for s in e["shift_ids"]}


def test_request_events_record_the_published_roster(engine: Engine) -> None:
    context = context_for(engine)
    clinic = seed(engine)
    lee = add_shift(engine, context, clinic, clinic.clinic, "2027-03-15", clinic.lee)
    patel = add_shift(engine, context, clinic, clinic.night, "2027-03-17", clinic.patel)
    publish_roster(engine, context, ADMIN, clinic.roster, 1)
    swap = propose_swap(engine, context, clinic.actor(clinic.lee), lee["id"], patel["id"]).data
    answer_swap(engine, context, clinic.actor(clinic.patel), swap["id"], True, 1)
    decide_request(engine, context, ADMIN, swap["id"], True, 2)
    drop_shift(engine, context, clinic.actor(clinic.lee), patel["id"])
    request_pickup(engine, context, clinic.actor(clinic.kim), patel["id"])
    kinds = [(e["kind"], e["detail"].get("published")) for e in _events(engine)]
    assert kinds[-5:] == [
        ("swap", True),
        ("accept", True),
        ("approve", True),
        ("drop", True),
        ("pickup", True),
    ]


def test_an_approved_pickup_reaches_gmed_as_a_pickup_and_a_swap_as_a_swap(
    engine: Engine,
) -> None:
    context = context_for(engine)
    told: list[tuple[str, list[str]]] = []
    real = context.outbox

    def outbox(conn: Connection, items: Sequence[tuple[str, ShiftSnapshot]], reason: str) -> Any:
        told.append((reason, [trigger for trigger, _ in items]))
        return real(conn, items, reason)

    context = dataclasses.replace(context, outbox=outbox)
    clinic = seed(engine)
    lee = add_shift(engine, context, clinic, clinic.clinic, "2027-03-15", clinic.lee)
    patel = add_shift(engine, context, clinic, clinic.night, "2027-03-17", clinic.patel)
    open_shift = add_shift(engine, context, clinic, clinic.clinic, "2027-03-19", None)
    publish_roster(engine, context, ADMIN, clinic.roster, 1)
    pickup = request_pickup(engine, context, clinic.actor(clinic.kim), open_shift["id"]).data
    del told[:]
    decide_request(engine, context, ADMIN, pickup["id"], True, 1)
    assert told == [("pickup", ["S14"])]
    swap = propose_swap(engine, context, clinic.actor(clinic.lee), lee["id"], patel["id"]).data
    answer_swap(engine, context, clinic.actor(clinic.patel), swap["id"], True, 1)
    del told[:]
    decide_request(engine, context, ADMIN, swap["id"], True, 2)
    assert told == [("swap", ["S14", "S14"])]
