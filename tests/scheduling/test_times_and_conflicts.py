"""The conflict checker through the admin path: each rule refuses, names itself, the person
and the dates; a night across the DST change is 11 or 13 hours; bulk is all-or-nothing."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, select

from scheduling.errors import BulkRefused, InvalidInput, RuleConflict
from scheduling.physicians import update_physician
from scheduling.rules import BUILTIN_RULES, load_rules, update_rules
from scheduling.shifts import list_shifts, run_changes
from scheduling.tables import roster_events
from scheduling.times import hours, parse_instant, shift_bounds
from tests.scheduling.roster_seed import ADMIN, TZ, add_shift, context_for, seed


def test_a_night_across_the_dst_change_is_11_or_13_hours() -> None:
    spring = shift_bounds(date(2027, 3, 13), "19:00", 720, TZ)
    autumn = shift_bounds(date(2027, 11, 6), "19:00", 720, TZ)
    plain = shift_bounds(date(2027, 3, 20), "19:00", 720, TZ)
    assert hours(spring[1] - spring[0]) == 11
    assert hours(autumn[1] - autumn[0]) == 13
    assert hours(plain[1] - plain[0]) == 12
    assert spring[0] == parse_instant("2027-03-14T00:00:00Z")  # 19:00 EST
    assert spring[1] == parse_instant("2027-03-14T11:00:00Z")  # 07:00 EDT


def test_stored_shift_times_are_utc_and_local_to_the_type(engine: Engine) -> None:
    context = context_for(engine)
    clinic = seed(engine)
    night = add_shift(engine, context, clinic, clinic.night, "2027-03-13", clinic.lee)
    assert parse_instant(night["start"]) == parse_instant("2027-03-14T00:00:00+00:00")
    assert parse_instant(night["end"]) == parse_instant("2027-03-14T11:00:00+00:00")
    assert night["status"] == "assigned" and night["version"] == 1


def _refusal(engine: Engine, item: dict) -> RuleConflict:
    with pytest.raises(RuleConflict) as caught:
        run_changes(engine, context_for(engine), ADMIN, [item])
    return caught.value


def test_overlap_names_rule_person_and_dates(engine: Engine) -> None:
    context = context_for(engine)
    clinic = seed(engine)
    add_shift(engine, context, clinic, clinic.night, "2027-03-03", clinic.lee)
    refusal = _refusal(
        engine,
        {
            "op": "create",
            "roster_id": clinic.roster,
            "shift_type_id": clinic.clinic,
            "start": "2027-03-03T20:00:00-05:00",
            "end": "2027-03-04T06:00:00-05:00",
            "physician_id": clinic.lee,
        },
    )
    (conflict,) = refusal.conflicts
    assert conflict.rule == "overlap" and conflict.physician == "Dr Lee"
    assert conflict.message.startswith(
        "Conflict (overlap): Dr Lee already works 2027-03-03 19:00-07:00 (Night call);"
    )
    assert "2027-03-03 20:00-06:00" in conflict.message
    assert conflict.dates == ("2027-03-03",)
    # Refused means not written, and no event for it either.
    assert len(list_shifts(engine, ADMIN, physician_id=clinic.lee)) == 1
    with engine.connect() as conn:
        kinds = [r.kind for r in conn.execute(select(roster_events.c.kind))]
    assert kinds.count("create") == 1


def test_night_then_morning_clinic_breaks_rest_and_sequence(engine: Engine) -> None:
    context = context_for(engine)
    clinic = seed(engine)
    add_shift(engine, context, clinic, clinic.night, "2027-03-03", clinic.lee)
    refusal = _refusal(
        engine,
        {
            "op": "create",
            "roster_id": clinic.roster,
            "shift_type_id": clinic.clinic,
            "date": "2027-03-04",
            "physician_id": clinic.lee,
        },
    )
    rules = sorted(c.rule for c in refusal.conflicts)
    assert rules == ["forbidden_sequence", "min_rest"]
    sequence = next(c for c in refusal.conflicts if c.rule == "forbidden_sequence")
    assert "Dr Lee would start Clinic 2027-03-04 08:00-17:00 1 h after Night call" in (
        sequence.message
    )
    # 36 hours later the rest is fine but the night>clinic:24 sequence is not (18:00 next day).
    update_rules(
        engine,
        context.default_rules,
        {"forbidden_sequences": ["night>clinic:48"]},
        expected_version=0,
        actor="alice",
    )
    later = _refusal(
        engine,
        {
            "op": "create",
            "roster_id": clinic.roster,
            "shift_type_id": clinic.clinic,
            "date": "2027-03-05",
            "physician_id": clinic.lee,
        },
    )
    assert [c.rule for c in later.conflicts] == ["forbidden_sequence"]


def test_weekly_maximum_counts_real_hours_in_the_iso_week(engine: Engine) -> None:
    context = context_for(engine)
    clinic = seed(engine)
    update_rules(
        engine,
        context.default_rules,
        {"weekly_max_hours": 30, "forbidden_sequences": []},
        expected_version=0,
        actor="alice",
    )
    for day in ("2027-03-08", "2027-03-09", "2027-03-10"):  # Mon-Wed, 27 h
        add_shift(engine, context, clinic, clinic.clinic, day, clinic.patel)
    refusal = _refusal(
        engine,
        {
            "op": "create",
            "roster_id": clinic.roster,
            "shift_type_id": clinic.clinic,
            "date": "2027-03-11",
            "physician_id": clinic.patel,
        },
    )
    (conflict,) = refusal.conflicts
    assert conflict.rule == "weekly_max_hours"
    assert "Dr Patel would work 36 h in ISO week 2027-W10 (2027-03-08 to 2027-03-14)" in (
        conflict.message
    )
    # The next ISO week is free again.
    add_shift(engine, context, clinic, clinic.clinic, "2027-03-15", clinic.patel)


def test_weekly_maximum_of_shifts(engine: Engine) -> None:
    context = context_for(engine)
    clinic = seed(engine)
    update_rules(
        engine, context.default_rules, {"weekly_max_shifts": 1}, expected_version=0, actor="a"
    )
    add_shift(engine, context, clinic, clinic.clinic, "2027-03-08", clinic.kim)
    refusal = _refusal(
        engine,
        {
            "op": "create",
            "roster_id": clinic.roster,
            "shift_type_id": clinic.clinic,
            "date": "2027-03-10",
            "physician_id": clinic.kim,
        },
    )
    assert [c.rule for c in refusal.conflicts] == ["weekly_max_shifts"]


def test_blackout_eligibility_and_inactive(engine: Engine) -> None:
    context = context_for(engine)
    clinic = seed(engine)
    update_physician(engine, clinic.lee, {"blackout_dates": ["2027-03-05"]}, 1)
    night_before = _refusal(
        engine,
        {
            "op": "create",
            "roster_id": clinic.roster,
            "shift_type_id": clinic.night,
            "date": "2027-03-04",  # ends 07:00 on the blackout date
            "physician_id": clinic.lee,
        },
    )
    (blackout,) = night_before.conflicts
    assert blackout.rule == "blackout" and blackout.dates == ("2027-03-05",)
    assert "Dr Lee is away on 2027-03-05" in blackout.message

    specialty = _refusal(
        engine,
        {
            "op": "create",
            "roster_id": clinic.roster,
            "shift_type_id": clinic.cardio,
            "date": "2027-03-10",
            "physician_id": clinic.patel,
        },
    )
    assert [c.rule for c in specialty.conflicts] == ["eligibility_specialty"]
    add_shift(engine, context, clinic, clinic.cardio, "2027-03-10", clinic.kim)

    location = _refusal(
        engine,
        {
            "op": "create",
            "roster_id": clinic.roster,
            "shift_type_id": clinic.remote,
            "date": "2027-03-12",
            "physician_id": clinic.patel,
        },
    )
    assert [c.rule for c in location.conflicts] == ["eligibility_location"]
    assert "is at North; Dr Patel works at Main" in location.conflicts[0].message

    update_physician(engine, clinic.patel, {"active": False}, 1)
    inactive = _refusal(
        engine,
        {
            "op": "create",
            "roster_id": clinic.roster,
            "shift_type_id": clinic.clinic,
            "date": "2027-03-12",
            "physician_id": clinic.patel,
        },
    )
    assert [c.rule for c in inactive.conflicts] == ["inactive"]


def test_bulk_is_all_or_nothing_with_every_items_error(engine: Engine) -> None:
    context = context_for(engine)
    clinic = seed(engine)
    existing = add_shift(engine, context, clinic, clinic.clinic, "2027-03-02", clinic.kim)
    items = [
        {
            "op": "create",
            "roster_id": clinic.roster,
            "shift_type_id": clinic.clinic,
            "date": "2027-03-16",
            "physician_id": clinic.lee,
        },
        {
            "op": "create",
            "roster_id": clinic.roster,
            "shift_type_id": clinic.night,
            "date": "2027-03-16",
            "physician_id": clinic.lee,
        },  # 2 h after item 0 ends
        {"op": "edit", "id": existing["id"], "version": 7, "physician_id": clinic.patel},
        {
            "op": "create",
            "roster_id": clinic.roster,
            "shift_type_id": clinic.clinic,
            "date": "2027-04-02",
        },  # outside the roster
    ]
    with pytest.raises(BulkRefused) as caught:
        run_changes(engine, context, ADMIN, items)
    errors = {e["index"]: e for e in caught.value.errors}
    assert set(errors) == {0, 1, 2, 3}
    assert errors[2]["error"] == "StaleVersion"
    assert errors[3]["error"] == "InvalidInput" and "outside roster" in errors[3]["detail"]
    assert [c["rule"] for c in errors[1]["conflicts"]] == ["min_rest"]
    assert errors[0]["conflicts"] == errors[1]["conflicts"]
    assert [s["id"] for s in list_shifts(engine, ADMIN)] == [existing["id"]]

    # The same batch without its bad items goes through in one transaction.
    good = [items[0], {**items[2], "version": 1}]
    done = run_changes(engine, context, ADMIN, good).data
    assert [s["physician_id"] for s in done] == [clinic.lee, clinic.patel]
    assert done[1]["version"] == 2


def test_rules_are_versioned_and_validated(engine: Engine) -> None:
    context = context_for(engine)
    with engine.connect() as conn:
        assert load_rules(conn, context.default_rules).min_rest_hours == 10
    rules = update_rules(
        engine, context.default_rules, {"min_rest_hours": 12}, expected_version=0, actor="a"
    )
    assert rules.version == 1 and rules.min_rest_hours == 12
    from scheduling.errors import StaleVersion

    with pytest.raises(StaleVersion):
        update_rules(
            engine, context.default_rules, {"min_rest_hours": 8}, expected_version=0, actor="b"
        )
    with pytest.raises(InvalidInput):
        update_rules(
            engine,
            context.default_rules,
            {"forbidden_sequences": ["nonsense"]},
            expected_version=1,
            actor="a",
        )
    with engine.connect() as conn:
        assert load_rules(conn, context.default_rules).min_rest_hours == 12


def test_the_builtin_rules_are_the_settings_defaults(engine: Engine) -> None:
    """Callers without a context (``eligible_physicians(conn, shift_id)``) get these."""
    defaults = context_for(engine).default_rules
    assert defaults == BUILTIN_RULES
    custom = context_for(engine, roster_min_rest_hours=8, roster_forbidden_sequences=["*>*:1"])
    assert custom.default_rules.min_rest_hours == 8
    assert [s.text() for s in custom.default_rules.forbidden_sequences] == ["*>*:1"]
