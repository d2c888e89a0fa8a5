"""Drop, pickup and swap with approval: ownership, lead time, events, and racing approvals
that end with exactly one winner on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, select

from scheduling.eligibility import eligible_physicians
from scheduling.errors import (
    Forbidden,
    RuleConflict,
    SchedulingError,
    StaleVersion,
    StateConflict,
)
from scheduling.publish import publish_roster
from scheduling.records import Actor
from scheduling.requests import (
    answer_swap,
    decide_request,
    drop_shift,
    propose_swap,
    request_pickup,
    withdraw_request,
)
from scheduling.roster_events import events_after
from scheduling.rules import update_rules
from scheduling.shifts import get_shift, list_shifts
from scheduling.tables import shift_requests
from tests.scheduling.roster_seed import ADMIN, Clinic, add_shift, context_for, seed


def _published(engine: Engine) -> tuple[Clinic, dict[str, dict[str, Any]]]:
    context = context_for(engine)
    clinic = seed(engine)
    made = {
        "lee_clinic": add_shift(engine, context, clinic, clinic.clinic, "2027-03-08", clinic.lee),
        "patel_clinic": add_shift(
            engine, context, clinic, clinic.clinic, "2027-03-10", clinic.patel
        ),
        "patel_night": add_shift(engine, context, clinic, clinic.night, "2027-03-07", clinic.patel),
        "open": add_shift(engine, context, clinic, clinic.clinic, "2027-03-12", None),
        "lee_later": add_shift(engine, context, clinic, clinic.clinic, "2027-03-15", clinic.lee),
    }
    publish_roster(engine, context, ADMIN, clinic.roster, 1)
    return clinic, made


def test_drop_opens_the_shift_and_offers_it_to_the_eligible_pool(engine: Engine) -> None:
    context = context_for(engine)
    clinic, made = _published(engine)
    lee = clinic.actor(clinic.lee)
    with pytest.raises(Forbidden):
        drop_shift(engine, context, clinic.actor(clinic.patel), made["lee_clinic"]["id"])
    dropped = drop_shift(engine, context, lee, made["lee_clinic"]["id"], 1).data
    assert dropped["status"] == "open" and dropped["physician_id"] is None
    with engine.connect() as conn:
        pool = eligible_physicians(conn, made["lee_clinic"]["id"])
        (event,) = [e for e in events_after(conn) if e["kind"] == "drop"]
    # Patel works the night before (19:00-07:00), so the 08:00 clinic is not for him.
    assert pool == [clinic.lee, clinic.kim]
    assert event["physician_ids"] == [clinic.lee]
    assert event["detail"]["eligible_physician_ids"] == [clinic.kim]  # not the dropper
    assert event["shift_ids"] == [made["lee_clinic"]["id"]]
    with pytest.raises(Forbidden):  # it is not Lee's any more
        drop_shift(engine, context, lee, made["lee_clinic"]["id"])


def test_lead_time_refuses_drops_and_swaps_and_names_the_rule(engine: Engine) -> None:
    context = context_for(engine)
    clinic, made = _published(engine)
    update_rules(
        engine, context.default_rules, {"swap_lead_days": 400}, expected_version=0, actor="a"
    )
    with pytest.raises(StateConflict) as caught:
        drop_shift(engine, context, clinic.actor(clinic.lee), made["lee_clinic"]["id"])
    assert caught.value.rule == "lead_time"
    assert str(caught.value).startswith("Refused (lead_time): Dr Lee's shift 2027-03-08 08:00")
    with pytest.raises(StateConflict, match="lead_time"):
        propose_swap(
            engine,
            context,
            clinic.actor(clinic.lee),
            made["lee_clinic"]["id"],
            made["patel_clinic"]["id"],
        )


def test_pickup_is_checked_then_approved_and_rivals_are_closed(engine: Engine) -> None:
    context = context_for(engine)
    clinic, made = _published(engine)
    open_id = made["open"]["id"]
    kim = request_pickup(engine, context, clinic.actor(clinic.kim), open_id).data
    lee = request_pickup(engine, context, clinic.actor(clinic.lee), open_id, "happy to").data
    with pytest.raises(StateConflict, match="already asked"):
        request_pickup(engine, context, clinic.actor(clinic.kim), open_id)
    with pytest.raises(Forbidden):
        decide_request(engine, context, clinic.actor(clinic.kim), kim["id"], True, 1)
    with pytest.raises(StaleVersion):
        decide_request(engine, context, ADMIN, kim["id"], True, 5)
    approved = decide_request(engine, context, ADMIN, kim["id"], True, 1).data
    assert approved["status"] == "approved" and approved["decided_by"] == "alice.admin"
    shift = get_shift(engine, ADMIN, open_id)
    assert shift["physician_id"] == clinic.kim and shift["status"] == "assigned"
    with engine.connect() as conn:
        rival = conn.execute(select(shift_requests).where(shift_requests.c.id == lee["id"])).one()
        kinds = [(e["kind"], e["request_id"]) for e in events_after(conn)]
    assert rival.status == "rejected" and "approved" in rival.note
    assert ("pickup", kim["id"]) in kinds and ("approve", kim["id"]) in kinds
    assert ("reject", lee["id"]) in kinds


def test_pickup_refused_by_the_checker_at_request_time(engine: Engine) -> None:
    context = context_for(engine)
    clinic, made = _published(engine)
    update_rules(
        engine, context.default_rules, {"weekly_max_shifts": 2}, expected_version=0, actor="a"
    )
    with pytest.raises(RuleConflict) as caught:  # Patel has two shifts in that week already
        request_pickup(engine, context, clinic.actor(clinic.patel), made["open"]["id"])
    assert [c.rule for c in caught.value.conflicts] == ["weekly_max_shifts"]


def test_swap_needs_the_counterparty_and_then_an_admin(engine: Engine) -> None:
    context = context_for(engine)
    clinic, made = _published(engine)
    lee, patel = clinic.actor(clinic.lee), clinic.actor(clinic.patel)
    mine, theirs = made["lee_later"]["id"], made["patel_clinic"]["id"]
    with pytest.raises(Forbidden):  # not Patel's shift to offer
        propose_swap(engine, context, patel, mine, theirs)
    swap = propose_swap(engine, context, lee, mine, theirs).data
    assert swap["status"] == "pending" and swap["counterparty_id"] == clinic.patel
    with pytest.raises(StateConflict, match="waits for Dr Patel to accept"):
        decide_request(engine, context, ADMIN, swap["id"], True, 1)
    with pytest.raises(Forbidden):  # only the counterparty answers
        answer_swap(engine, context, lee, swap["id"], True, 1)
    accepted = answer_swap(engine, context, patel, swap["id"], True, 1).data
    assert accepted["status"] == "accepted"
    before = list_shifts(engine, ADMIN, physician_id=clinic.lee)
    assert [s["id"] for s in before] == [made["lee_clinic"]["id"], mine]
    decide_request(engine, context, ADMIN, swap["id"], True, 2)
    assert get_shift(engine, ADMIN, mine)["physician_id"] == clinic.patel
    assert get_shift(engine, ADMIN, theirs)["physician_id"] == clinic.lee
    with engine.connect() as conn:
        events = [e for e in events_after(conn) if e["request_id"] == swap["id"]]
    assert [e["kind"] for e in events] == ["swap", "accept", "approve"]
    assert all(e["physician_ids"] == sorted([clinic.lee, clinic.patel]) for e in events)


def test_swap_that_would_break_a_rule_is_refused(engine: Engine) -> None:
    context = context_for(engine)
    clinic, made = _published(engine)
    # Patel would take Lee's 08:00 clinic an hour after his Sunday night ends.
    with pytest.raises(RuleConflict) as caught:
        propose_swap(
            engine,
            context,
            clinic.actor(clinic.lee),
            made["lee_clinic"]["id"],
            made["patel_clinic"]["id"],
        )
    rules = sorted(c.rule for c in caught.value.conflicts)
    assert rules == ["forbidden_sequence", "min_rest"]
    assert all(c.physician == "Dr Patel" for c in caught.value.conflicts)
    with pytest.raises(StateConflict, match="not another physician"):
        propose_swap(
            engine,
            context,
            clinic.actor(clinic.patel),
            made["patel_night"]["id"],
            made["patel_clinic"]["id"],
        )


def test_decline_and_withdraw(engine: Engine) -> None:
    context = context_for(engine)
    clinic, made = _published(engine)
    lee, patel = clinic.actor(clinic.lee), clinic.actor(clinic.patel)
    first = propose_swap(
        engine, context, lee, made["lee_later"]["id"], made["patel_clinic"]["id"]
    ).data
    assert answer_swap(engine, context, patel, first["id"], False, 1).data["status"] == ("declined")
    with pytest.raises(StateConflict, match="already declined"):
        withdraw_request(engine, lee, first["id"], 2)
    second = request_pickup(engine, context, lee, made["open"]["id"]).data
    with pytest.raises(Forbidden):
        withdraw_request(engine, patel, second["id"], 1)
    assert withdraw_request(engine, lee, second["id"], 1).data["status"] == "withdrawn"


def _race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once; each result is its return value or the refusal it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except SchedulingError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_two_admins_approving_one_request_exactly_one_wins(engine: Engine) -> None:
    context = context_for(engine)
    clinic, made = _published(engine)
    asked = request_pickup(engine, context, clinic.actor(clinic.kim), made["open"]["id"]).data
    admins = [Actor("admin.one", is_admin=True), Actor("admin.two", is_admin=True)]
    results = _race(
        [
            lambda: decide_request(engine, context, admins[0], asked["id"], True, 1),
            lambda: decide_request(engine, context, admins[1], asked["id"], False, 1),
        ]
    )
    winners = [r for r in results if not isinstance(r, SchedulingError)]
    losers = [r for r in results if isinstance(r, SchedulingError)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], StateConflict | StaleVersion)
    with engine.connect() as conn:
        row = conn.execute(select(shift_requests).where(shift_requests.c.id == asked["id"])).one()
        decisions = [e for e in events_after(conn) if e["kind"] in ("approve", "reject")]
    assert row.status == winners[0].data["status"] and row.version == 2
    assert len(decisions) == 1
    owner = get_shift(engine, ADMIN, made["open"]["id"])["physician_id"]
    assert owner == (clinic.kim if row.status == "approved" else None)


def test_two_physicians_picking_up_one_open_shift_exactly_one_gets_it(engine: Engine) -> None:
    context = context_for(engine)
    clinic, made = _published(engine)
    open_id = made["open"]["id"]
    asks = _race(
        [
            lambda: request_pickup(engine, context, clinic.actor(clinic.kim), open_id),
            lambda: request_pickup(engine, context, clinic.actor(clinic.lee), open_id),
        ]
    )
    assert all(not isinstance(a, SchedulingError) for a in asks)
    results = _race(
        [
            lambda a=a, n=n: decide_request(
                engine, context, Actor(f"admin.{n}", is_admin=True), a.data["id"], True, 1
            )
            for n, a in enumerate(asks)
        ]
    )
    winners = [r for r in results if not isinstance(r, SchedulingError)]
    assert len(winners) == 1
    loser = next(r for r in results if isinstance(r, SchedulingError))
    assert isinstance(loser, StateConflict | StaleVersion)
    shift = get_shift(engine, ADMIN, open_id)
    assert shift["physician_id"] == winners[0].data["requester_id"]
    assert shift["version"] == 2
    with engine.connect() as conn:
        statuses = sorted(r.status for r in conn.execute(select(shift_requests)))
    assert statuses == ["approved", "rejected"]
