"""Who hears what, and the dispatcher's promise: every event once, none lost, none doubled."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Connection, Engine, func, select, update

from hub.notifications.dispatcher import CURSOR, Dispatcher, dispatch_status
from hub.notifications.outbox import Channels
from hub.notifications.routing import resolve_eligibility
from hub.notifications.tables import cursors, deliveries, device_tokens, notifications
from hub.users import create_user, users
from scheduling.publish import publish_roster
from scheduling.tables import rosters
from tests.hub.notifications.world import World
from tests.scheduling.roster_seed import ADMIN, add_shift, context_for, seed


@pytest.fixture
def world(engine: Engine) -> World:
    return World(engine)


def test_each_request_kind_reaches_the_people_the_issue_names(world: World) -> None:
    ann, bob, cy = world.doctor("Ann Ames"), world.doctor("Bob Burr"), world.doctor("Cy Cole")
    admin = world.staff("admin1", "admin")
    desk = world.staff("desk1", "call_center")
    world.staff("nurse1", "staff")
    ann_shift, bob_shift = world.shift(ann, 10), world.shift(bob, 11)

    pickup = world.request("pickup", ann_shift, cy)
    swap = world.request("swap", ann_shift, ann, bob)
    events = {
        "pickup": world.event("pickup", [ann_shift], [cy], request_id=pickup),
        "swap": world.event("swap", [ann_shift, bob_shift], [ann, bob], request_id=swap),
        "approve_pickup": world.event("approve", [ann_shift], [cy], request_id=pickup),
        "reject_pickup": world.event("reject", [ann_shift], [cy], request_id=pickup),
        "approve_swap": world.event(
            "approve", [ann_shift, bob_shift], [ann, bob], request_id=swap, actor="admin1"
        ),
    }
    assert Dispatcher(world.engine, Channels()).run_once() == len(events)

    assert world.told(events["pickup"]) == {(admin, "pickup_requested")}
    assert world.told(events["swap"]) == {(bob.user_id, "swap_offered"), (admin, "swap_requested")}
    assert world.told(events["approve_pickup"]) == {(cy.user_id, "request_approved")}
    assert world.told(events["reject_pickup"]) == {(cy.user_id, "request_rejected")}
    # the approving admin (the actor) is not told about their own approval
    assert world.told(events["approve_swap"]) == {
        (ann.user_id, "swap_approved"),
        (bob.user_id, "swap_approved"),
        (desk, "swap_approved"),
    }
    with world.engine.connect() as conn:
        body = conn.execute(
            select(notifications.c.body).where(notifications.c.event_id == events["swap"])
        ).first()
    assert body is not None
    # shift times in the shift type's zone (13:00 UTC is 09:00 in New York in March 2030)
    assert "Ann Ames asks to swap" in body.body and "Mon 11 Mar 09:00-17:00" in body.body


def test_a_dropped_shift_goes_to_the_eligible_physicians_not_the_dropper(world: World) -> None:
    ann, bob, cy = world.doctor("Ann Ames"), world.doctor("Bob Burr"), world.doctor("Cy Cole")
    world.staff("admin1", "admin")
    shift = world.shift(ann)
    drop = world.event("drop", [shift], [ann], actor=ann.username)
    eligible = resolve_eligibility()
    with world.engine.connect() as conn:
        expected = set(eligible(conn, shift)) - {ann.physician_id}
    assert expected, "the test world should have someone eligible besides the dropper"
    user_of = {d.physician_id: d.user_id for d in (ann, bob, cy)}

    Dispatcher(world.engine, Channels(), eligible=eligible).run_once()

    assert world.told(drop) == {(user_of[p], "shift_open") for p in expected}


def test_a_drop_goes_to_the_pool_scheduling_offered_it_to(world: World) -> None:
    ann, bob, cy = world.doctor("Ann Ames"), world.doctor("Bob Burr"), world.doctor("Cy Cole")
    shift = world.shift(ann)
    # the event says whom the open shift was offered to at the time; that decides
    pool = {"eligible_physician_ids": [cy.physician_id], "summary": "Ann dropped a shift"}
    drop = world.event("drop", [shift], [ann], actor=ann.username, detail=pool)
    Dispatcher(world.engine, Channels()).run_once()
    assert world.told(drop) == {(cy.user_id, "shift_open")}
    assert bob.user_id not in {u for u, _ in world.told()}


def test_request_events_read_the_request_snapshot_in_their_detail(world: World) -> None:
    ann, bob = world.doctor("Ann Ames"), world.doctor("Bob Burr")
    desk = world.staff("desk1", "call_center")
    shift = world.shift(ann)
    swap = world.request("swap", shift, ann, bob)
    snapshot = {
        "request": {
            "id": swap,
            "kind": "swap",
            "requester_id": ann.physician_id,
            "counterparty_id": bob.physician_id,
            "status": "approved",
        },
    }
    approved = world.event("approve", [shift], [ann, bob], request_id=swap, detail=snapshot)
    Dispatcher(world.engine, Channels()).run_once()
    assert world.told(approved) == {
        (ann.user_id, "swap_approved"),
        (bob.user_id, "swap_approved"),
        (desk, "swap_approved"),
    }


def test_edits_of_a_published_roster_are_told_and_draft_edits_are_quiet(world: World) -> None:
    ann = world.doctor("Ann Ames")
    shift = world.shift(ann)
    moved = world.event("move", [shift], [ann])
    Dispatcher(world.engine, Channels()).run_once()
    assert world.told(moved) == {(ann.user_id, "shift_changed")}
    with world.engine.begin() as conn:
        conn.execute(update(rosters).values(status="draft"))
    quiet = world.event("edit", [shift], [ann])
    published = world.event("publish", [], [ann], actor="admin1")
    Dispatcher(world.engine, Channels()).run_once()
    assert world.told(quiet) == set()
    assert world.told(published) == {(ann.user_id, "roster_published")}


def test_a_change_is_told_by_what_its_roster_was_when_it_was_written(world: World) -> None:
    ann = world.doctor("Ann Ames")
    shift = world.shift(ann)
    # the roster is published now, but these were written while it was a draft
    draft_kinds = ("create", "edit", "move", "delete")
    drafts = [world.event(k, [shift], [ann], detail={"published": False}) for k in draft_kinds]
    Dispatcher(world.engine, Channels()).run_once()
    assert all(world.told(e) == set() for e in drafts)
    # and the other way round: written while published, read after a (test-only) unpublish
    with world.engine.begin() as conn:
        conn.execute(update(rosters).values(status="draft"))
    live = world.event("edit", [shift], [ann], detail={"published": True})
    Dispatcher(world.engine, Channels()).run_once()
    assert world.told(live) == {(ann.user_id, "shift_changed")}


def test_a_draft_built_then_published_is_news_once_not_per_shift(engine: Engine) -> None:
    """Dispatched only after the publish (as a dispatcher that falls behind reads them), the
    draft's ``create`` events still tell nobody: the roster_published event does."""
    context = context_for(engine)
    clinic = seed(engine)
    doctors = {
        p: create_user(engine, f"dr{p}", roles={"physician"}, physician_id=p)
        for p in (clinic.lee, clinic.kim)
    }
    add_shift(engine, context, clinic, clinic.clinic, "2027-03-08", clinic.lee)
    add_shift(engine, context, clinic, clinic.clinic, "2027-03-09", clinic.kim)
    add_shift(engine, context, clinic, clinic.clinic, "2027-03-10", None)
    publish_roster(engine, context, ADMIN, clinic.roster, 1)
    Dispatcher(engine, Channels()).run_once()
    with engine.connect() as conn:
        told = {(r.user_id, r.kind) for r in conn.execute(select(notifications))}
    assert told == {(u.id, "roster_published") for u in doctors.values()}


def test_deliveries_follow_the_users_email_and_devices(world: World) -> None:
    ann = world.doctor("Ann Ames", email="ann@example.org")
    bob = world.doctor("Bob Burr")  # no email, no device: in-app only
    admin = world.staff("admin1", "admin", email="admin@example.org")
    with world.engine.begin() as conn:
        for token in ("tok-a1", "tok-a2"):
            conn.execute(
                device_tokens.insert().values(
                    user_id=ann.user_id,
                    token=token,
                    platform="android",
                    created_at=func.now(),
                    updated_at=func.now(),
                )
            )
    swap = world.request("swap", world.shift(bob), bob, ann)
    world.event("swap", [world.shift(bob, 12)], [bob, ann], request_id=swap)

    Dispatcher(world.engine, Channels(email=True, push=True)).run_once()

    with world.engine.connect() as conn:
        rows = conn.execute(
            select(notifications.c.user_id, deliveries.c.channel, deliveries.c.target)
            .join(notifications, notifications.c.id == deliveries.c.notification_id)
            .where(deliveries.c.status == "pending")
        ).all()
    assert sorted(map(tuple, rows)) == sorted(
        [
            (ann.user_id, "email", "ann@example.org"),
            (ann.user_id, "push", "tok-a1"),
            (ann.user_id, "push", "tok-a2"),
            (admin, "email", "admin@example.org"),
        ]
    )


def test_redispatch_after_a_lost_cursor_writes_nothing_twice(world: World) -> None:
    ann = world.doctor("Ann Ames", email="a@example.org")
    bob = world.doctor("Bob Burr", email="b@example.org")
    world.staff("admin1", "admin", email="admin@example.org")
    swap = world.request("swap", world.shift(ann), ann, bob)
    for _ in range(3):
        world.event("swap", [world.shift(ann, 15)], [ann, bob], request_id=swap)
    channels = Channels(email=True)
    assert Dispatcher(world.engine, channels).run_once() == 3
    before = _counts(world.engine)
    # a crash that lost the cursor (or a restored backup): every event is read again
    with world.engine.begin() as conn:
        conn.execute(update(cursors).where(cursors.c.name == CURSOR).values(last_event_id=0))
    assert Dispatcher(world.engine, channels).run_once() == 3
    assert _counts(world.engine) == before == (6, 6)
    assert dispatch_status(world.engine).lag == 0


def test_two_dispatchers_racing_tell_everyone_exactly_once(world: World) -> None:
    ann, bob = world.doctor("Ann Ames"), world.doctor("Bob Burr")
    admins = [world.staff(f"admin{n}", "admin") for n in range(3)]
    swap = world.request("swap", world.shift(ann), ann, bob)
    for _ in range(40):
        world.event("swap", [world.shift(ann, 16)], [ann, bob], request_id=swap)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def drain() -> None:
        dispatcher = Dispatcher(world.engine, Channels(), batch=7)
        barrier.wait()
        try:
            while dispatch_status(world.engine).lag:
                dispatcher.run_once()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=drain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert _counts(world.engine)[0] == 40 * (1 + len(admins))


def test_an_event_that_fails_holds_the_line_then_is_passed_over_loudly(world: World) -> None:
    ann, bob = world.doctor("Ann Ames"), world.doctor("Bob Burr")
    first = world.event("drop", [world.shift(ann)], [ann])
    second = world.event("publish", [], [ann, bob])

    def broken_rule(conn: Connection, shift_id: int) -> list[int]:
        raise RuntimeError(f"eligibility for shift {shift_id} is broken")

    dispatcher = Dispatcher(world.engine, Channels(), eligible=broken_rule, max_failures=3)
    assert dispatcher.run_once() == 0 and dispatcher.run_once() == 0
    assert world.told() == set()
    assert dispatch_status(world.engine).last_event_id == 0
    assert dispatcher.last_error and "eligibility for shift" in dispatcher.last_error
    # third failure: the event is passed over, and the one behind it gets through
    assert dispatcher.run_once() == 2
    assert world.told(first) == set()
    assert world.told(second) == {
        (ann.user_id, "roster_published"),
        (bob.user_id, "roster_published"),
    }


def test_a_hole_in_the_ids_is_waited_for_on_postgresql(world: World) -> None:
    ann = world.doctor("Ann Ames")
    world.event("publish", [], [ann], event_id=1)
    world.event("publish", [], [ann], event_id=3)  # 2: a transaction not committed yet
    now = [0.0]
    dispatcher = Dispatcher(world.engine, Channels(), gap_grace=10.0, clock=lambda: now[0])
    if world.engine.dialect.name == "sqlite":
        # one writer at a time on SQLite: a hole can never be filled later
        assert dispatcher.run_once() == 2
        return
    assert dispatcher.run_once() == 1
    world.event("publish", [], [ann], event_id=2)  # the late commit arrives
    assert dispatcher.run_once() == 2
    assert dispatch_status(world.engine).last_event_id == 3
    world.event("publish", [], [ann], event_id=5)  # 4 was rolled back: never appears
    assert dispatcher.run_once() == 0
    now[0] = 11.0
    assert dispatcher.run_once() == 1
    assert {n for _, n in world.told()} == {"roster_published"}


def test_inactive_users_are_not_told(world: World) -> None:
    ann = world.doctor("Ann Ames")
    with world.engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == ann.user_id).values(active=0))
    event = world.event("publish", [], [ann])
    Dispatcher(world.engine, Channels()).run_once()
    assert world.told(event) == set()


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            int(conn.execute(select(func.count()).select_from(notifications)).scalar_one()),
            int(conn.execute(select(func.count()).select_from(deliveries)).scalar_one()),
        )
