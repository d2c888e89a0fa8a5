"""Publish: the whole draft is checked, canonical PractitionerRole / Schedule / Slot are
written, GMED gets one SIU^S12 per shift over real MLLP; an approved swap moves the Slots
and sends GMED two SIU^S14."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from adapters.gmed.parser import parse_message
from canonical.repository import CanonicalRepository
from hub.message_store import OUTBOUND
from hub.outbound import OutboundSender
from hub.scheduling_context import scheduling_context
from hub.tables import messages
from scheduling.canonical_roster import SHIFT_SYSTEM
from scheduling.errors import RuleConflict, StaleVersion, StateConflict
from scheduling.publish import publish_roster
from scheduling.requests import answer_swap, decide_request, propose_swap
from scheduling.rosters import get_roster
from scheduling.shifts import run_changes
from tests.hub.test_outbound import GmedSandbox
from tests.scheduling.roster_seed import ADMIN, add_shift, context_for, seed, settings_for


@pytest.fixture
def gmed() -> Iterator[GmedSandbox]:
    box = GmedSandbox(frozenset({"SIU^S12", "SIU^S13", "SIU^S14", "SIU^S15"}))
    yield box
    box.close()


def _slot(engine: Engine, shift_id: int) -> dict:
    with Session(engine) as session:
        repo = CanonicalRepository(session)
        (ref,) = repo.find_by_identifier(str(shift_id), SHIFT_SYSTEM, "Slot")
        slot = repo.get("Slot", ref.split("/", 1)[1])
        assert slot is not None
        return slot


def _resolve(engine: Engine, reference: str) -> dict:
    kind, _, rid = reference.partition("/")
    with Session(engine) as session:
        found = CanonicalRepository(session).get(kind, rid)
    assert found is not None
    return found


def test_publish_refuses_a_draft_with_conflicts_and_lists_them(engine: Engine) -> None:
    context = context_for(engine)
    clinic = seed(engine)
    night = add_shift(engine, context, clinic, clinic.night, "2027-03-03", clinic.lee)
    add_shift(engine, context, clinic, clinic.clinic, "2027-03-05", clinic.lee)
    # The admin path refuses conflicts, so break the draft behind its back: a blackout.
    from scheduling.physicians import update_physician

    update_physician(engine, clinic.lee, {"blackout_dates": ["2027-03-04", "2027-03-05"]}, 1)
    with pytest.raises(RuleConflict) as caught:
        publish_roster(engine, context, ADMIN, clinic.roster, 1)
    assert sorted((c.rule, c.dates) for c in caught.value.conflicts) == [
        ("blackout", ("2027-03-04",)),
        ("blackout", ("2027-03-05",)),
    ]
    assert get_roster(engine, clinic.roster, include_drafts=True)["status"] == "draft"
    update_physician(engine, clinic.lee, {"blackout_dates": []}, 2)
    with pytest.raises(StaleVersion):
        publish_roster(engine, context, ADMIN, clinic.roster, 0)
    published = publish_roster(engine, context, ADMIN, clinic.roster, 1)
    assert published.data["status"] == "published" and published.outbound_ids == []
    with pytest.raises(StateConflict):
        publish_roster(engine, context, ADMIN, clinic.roster, 2)
    slot = _slot(engine, night["id"])
    assert slot["status"] == "busy"
    assert slot["start"] == "2027-03-04T00:00:00.000Z"


def test_publish_writes_canonical_records_and_sends_gmed_siu(
    engine: Engine, gmed: GmedSandbox
) -> None:
    settings = settings_for(engine, gmed_outbound_host="127.0.0.1", gmed_outbound_port=gmed.port)
    context = scheduling_context(settings)
    clinic = seed(engine)
    lee_shift = add_shift(engine, context, clinic, clinic.clinic, "2027-03-15", clinic.lee)
    patel_shift = add_shift(engine, context, clinic, clinic.night, "2027-03-17", clinic.patel)
    open_shift = add_shift(engine, context, clinic, clinic.clinic, "2027-03-18", None)

    outcome = publish_roster(engine, context, ADMIN, clinic.roster, 1)
    assert len(outcome.outbound_ids) == 3
    sender = OutboundSender(engine, settings)
    assert [sender.send(i) for i in outcome.outbound_ids] == ["sent"] * 3
    received = [parse_message(r.raw) for r in gmed.sink.received]
    assert [m.trigger_event for m in received] == ["S12"] * 3
    by_placer = {m.segment("SCH").field(1): m for m in received}
    lee_msg = by_placer[str(lee_shift["id"])]
    assert lee_msg.segment("AIP").field(3) == str(clinic.lee)
    assert lee_msg.segment("AIS").field(3) == "CLINIC"
    assert by_placer[str(open_shift["id"])].segments("AIP") == []

    # Canonical: Slot -> Schedule -> PractitionerRole -> Practitioner "Dr Lee".
    slot = _slot(engine, lee_shift["id"])
    schedule = _resolve(engine, slot["schedule"]["reference"])
    role = _resolve(engine, schedule["actor"][0]["reference"])
    practitioner = _resolve(engine, role["practitioner"]["reference"])
    assert slot["status"] == "busy" and role["resourceType"] == "PractitionerRole"
    assert practitioner["name"] == [{"text": "Dr Lee"}]
    assert role["location"] == [{"display": "Main"}]

    # A swap after publish: counterparty accepts, admin approves -> Slots move, two S14.
    lee, patel = clinic.actor(clinic.lee), clinic.actor(clinic.patel)
    swap = propose_swap(engine, context, lee, lee_shift["id"], patel_shift["id"]).data
    assert swap["status"] == "pending"
    answer_swap(engine, context, patel, swap["id"], True, 1)
    approved = decide_request(engine, context, ADMIN, swap["id"], True, 2)
    assert len(approved.outbound_ids) == 2
    assert [sender.send(i) for i in approved.outbound_ids] == ["sent", "sent"]
    changes = [parse_message(r.raw) for r in gmed.sink.received[3:]]
    assert [m.trigger_event for m in changes] == ["S14", "S14"]
    owners = {m.segment("SCH").field(1): m.segment("AIP").field(3) for m in changes}
    assert owners == {
        str(lee_shift["id"]): str(clinic.patel),
        str(patel_shift["id"]): str(clinic.lee),
    }
    moved = _slot(engine, lee_shift["id"])
    new_role = _resolve(
        engine, _resolve(engine, moved["schedule"]["reference"])["actor"][0]["reference"]
    )
    assert new_role["practitioner"]["display"] == "Dr Patel"

    # Deleting a published shift cancels it at GMED and retires its Slot.
    deleted = run_changes(
        engine, context, ADMIN, [{"op": "delete", "id": open_shift["id"], "version": 1}]
    )
    (cancel_id,) = deleted.outbound_ids
    assert sender.send(cancel_id) == "sent"
    assert parse_message(gmed.sink.received[-1].raw).trigger_event == "S15"
    with engine.connect() as conn:
        stored = (
            conn.execute(
                select(messages.c.message_type)
                .where(messages.c.direction == OUTBOUND)
                .order_by(messages.c.id)
            )
            .scalars()
            .all()
        )
    assert stored == ["SIU^S12"] * 3 + ["SIU^S14"] * 2 + ["SIU^S15"]
