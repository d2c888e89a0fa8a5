"""Slot ranking: hard rules filter, each soft preference moves the score, picks are diverse,
reasons say why, and a patient with no history still gets an answer."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from scheduling.ranking import (
    Candidate,
    Place,
    Preferences,
    RankingError,
    SlotTable,
    TimeWindow,
    rank,
)

NOW = datetime(2030, 5, 6, 8, 0, tzinfo=UTC)  # a Monday
NEAR = Place("Location/near", "Near Clinic", 52.52, 13.405)
FAR = Place("Location/far", "Far Clinic", 52.52, 14.2)  # ~54 km east
UNKNOWN = Place("Main St", "Main St")  # an upload's text location, no position


def slot(
    ident: str,
    day: int,
    hour: int,
    who: str = "Practitioner/a",
    place: Place | None = NEAR,
    kinds: frozenset[str] = frozenset(),
) -> Candidate:
    start = NOW.replace(hour=0) + timedelta(days=day, hours=hour)
    return Candidate(ident, start, start + timedelta(minutes=30), who, place, kinds, "test")


def ids(prefs: Preferences, candidates: list[Candidate], k: int = 3) -> list[str]:
    return [p.candidate.slot_id for p in rank(candidates, prefs, NOW, k).picks]


def score_of(prefs: Preferences, candidate: Candidate) -> float:
    return rank([candidate], prefs, NOW, 1).picks[0].score


def test_no_preferences_no_history_ranks_soonest_first() -> None:
    pool = [slot("late", 3, 10), slot("soon", 1, 10, "Practitioner/b"), slot("mid", 2, 10)]
    ranking = rank(pool, Preferences(), NOW, 3)
    assert [p.candidate.slot_id for p in ranking.picks] == ["soon", "mid", "late"]
    assert ranking.considered == 3 and ranking.eligible == 3
    first = ranking.picks[0]
    assert [r.code for r in first.meets] == ["soonest"] and first.trades_off == ()
    assert set(first.components) == {"soon"}


def test_hard_filters() -> None:
    pool = [
        slot("too-soon", 0, 9),  # 1 hour's notice
        slot("sunday", 6, 10),  # 2030-05-12 is a Sunday
        slot("wrong-type", 2, 10, kinds=frozenset({"Vaccination"})),
        slot("far", 3, 10, place=FAR),
        slot("unknown-place", 4, 10, place=UNKNOWN),
        slot("fits", 2, 14, kinds=frozenset({"follow-up"})),
    ]
    prefs = Preferences(
        min_notice=timedelta(hours=24),
        blocked_days=frozenset({6}),
        visit_type="Follow-Up",
        home=(52.52, 13.40),
        max_travel_km=20,
    )
    ranking = rank(pool, prefs, NOW, 5)
    assert [p.candidate.slot_id for p in ranking.picks] == ["fits", "unknown-place"]
    unknown = ranking.picks[1]
    assert "distance-unknown" in [r.code for r in unknown.trades_off]
    assert "visit-type-unstated" in [r.code for r in unknown.trades_off]
    assert ids(Preferences(only_practitioners=frozenset({"Practitioner/z"})), pool) == []
    assert ids(Preferences(only_locations=frozenset({"Main St"})), pool) == ["unknown-place"]
    window = Preferences(not_before=NOW + timedelta(days=3), not_after=NOW + timedelta(days=4))
    assert ids(window, pool) == ["far"]


def test_blocked_days_are_the_patients_local_days() -> None:
    late_sunday_utc = slot("x", 6, 23)  # Sunday 23:00 UTC is Monday in Berlin
    blocked_sunday = frozenset({6})
    assert ids(Preferences(blocked_days=blocked_sunday), [late_sunday_utc]) == []
    berlin = Preferences(timezone="Europe/Berlin", blocked_days=blocked_sunday)
    assert ids(berlin, [late_sunday_utc]) == ["x"]
    with pytest.raises(RankingError):
        rank([late_sunday_utc], Preferences(timezone="Mars/Olympus"), NOW)


@pytest.mark.parametrize(
    ("prefs", "better", "worse", "code"),
    [
        (Preferences(preferred_days=frozenset({2})), slot("w", 2, 10), slot("t", 1, 10), "day"),
        (
            Preferences(preferred_times=(TimeWindow(time(13), time(17)),)),
            slot("pm", 1, 14),
            slot("am", 1, 9),
            "time",
        ),
        (
            Preferences(locations=frozenset({"Location/far"})),
            slot("f", 2, 10, place=FAR),
            slot("n", 1, 10),
            "location",
        ),
        (
            Preferences(home=(52.52, 13.40)),
            slot("n", 2, 10),
            slot("f", 1, 10, place=FAR),
            "distance",
        ),
        (
            Preferences(past_visits={"Practitioner/b": 2}),
            slot("b", 2, 10, "Practitioner/b"),
            slot("a", 1, 10),
            "continuity",
        ),
        (
            Preferences(practitioners=frozenset({"Practitioner/b"})),
            slot("b", 2, 10, "Practitioner/b"),
            slot("a", 1, 10),
            "continuity",
        ),
        (
            Preferences(visit_type="follow-up"),
            slot("typed", 2, 10, kinds=frozenset({"follow-up"})),
            slot("untyped", 1, 10),
            "visit_type",
        ),
        (Preferences(), slot("soon", 1, 10), slot("later", 9, 10), "soon"),
    ],
)
def test_each_soft_preference_moves_the_score(
    prefs: Preferences, better: Candidate, worse: Candidate, code: str
) -> None:
    """``better`` is the later slot (except for soonness itself): the preference has to
    outweigh a day's soonness."""
    both = rank([worse, better], prefs, NOW, 2).picks
    assert [p.candidate for p in both] == [better, worse], code
    assert both[0].components[code] > both[1].components[code]
    assert both[0].score > both[1].score


def test_a_preference_outweighs_soonness() -> None:
    prefs = Preferences(preferred_days=frozenset({3}), past_visits={"Practitioner/b": 1})
    pool = [slot("tomorrow", 1, 10), slot("thursday-b", 3, 10, "Practitioner/b")]
    assert ids(prefs, pool, 1) == ["thursday-b"]


def test_time_windows_fade_and_wrap_past_midnight() -> None:
    evening = Preferences(preferred_times=(TimeWindow(time(22), time(2)),))
    inside, near, far = slot("1am", 2, 1), slot("3am", 2, 3), slot("noon", 2, 12)
    scores = [rank([c], evening, NOW, 1).picks[0].components["time"] for c in (inside, near, far)]
    assert scores[0] == 1.0 and 0 < scores[1] < 1 and scores[2] == 0


def test_picks_are_not_near_duplicates() -> None:
    same_morning = [
        slot("a0", 1, 9, "Practitioner/a"),
        slot("a-0930", 1, 9, "Practitioner/a"),
        slot("a-1000", 1, 10, "Practitioner/a"),
        slot("b-0900", 1, 9, "Practitioner/b"),
        slot("a-next-day", 2, 9, "Practitioner/a"),
        slot("c-1400", 1, 14, "Practitioner/c"),
    ]
    prefs = Preferences(past_visits={"Practitioner/a": 3})
    picked = rank(same_morning, prefs, NOW, 3).picks
    starts = [p.candidate.start for p in picked]
    for i, one in enumerate(picked):
        for other in picked[i + 1 :]:
            apart = abs(one.candidate.start - other.candidate.start)
            assert apart >= timedelta(minutes=prefs.same_time_minutes)
            if one.candidate.practitioner_id == other.candidate.practitioner_id:
                assert apart >= timedelta(minutes=prefs.diversity_minutes)
    assert len(picked) == 3 and len(set(starts)) == 3
    ids_picked = [p.candidate.slot_id for p in picked]
    assert ids_picked[0] == "a0" and "a-next-day" in ids_picked and "c-1400" in ids_picked


def test_diversity_widens_beyond_the_first_pool() -> None:
    crowd = [slot(f"a{i}", 1, 9, "Practitioner/a") for i in range(600)]
    other = slot("b", 30, 9, "Practitioner/b")
    assert ids(Preferences(), [*crowd, other], 2) == ["a0", "b"]


def test_reasons_name_what_is_met_and_what_is_traded_off() -> None:
    prefs = Preferences(
        preferred_days=frozenset({1}),
        preferred_times=(TimeWindow(time(8), time(12)),),
        locations=frozenset({"Location/near"}),
        home=(52.52, 13.40),
        max_travel_km=100,
        past_visits={"Practitioner/a": 1},
        visit_type="follow-up",
    )
    pick = rank([slot("x", 2, 15, "Practitioner/b", FAR)], prefs, NOW, 1).picks[0]
    traded = {r.code: r.text for r in pick.trades_off}
    assert set(traded) == {
        "other-day",
        "other-time",
        "other-location",
        "farther",
        "new-provider",
        "visit-type-unstated",
    }
    assert traded["other-day"] == "on a Wednesday, not a preferred day"
    assert "15:00" in traded["other-time"] and "Far Clinic" in traded["other-location"]
    good = rank([slot("y", 1, 9, kinds=frozenset({"follow-up"}))], prefs, NOW, 1).picks[0]
    assert {r.code for r in good.meets} == {
        "preferred-day",
        "preferred-time",
        "preferred-location",
        "nearby",
        "continuity",
        "visit-type",
        "soonest",
    }
    assert good.trades_off == ()
    assert "1 visit)" in next(r.text for r in good.meets if r.code == "continuity")


def test_a_table_answers_many_queries_and_empty_inputs_answer_empty() -> None:
    table = SlotTable([slot("a", 1, 10), slot("b", 2, 10, "Practitioner/b")])
    assert ids(Preferences(preferred_days=frozenset({2})), table.candidates, 1) == ["b"]
    assert [p.candidate.slot_id for p in rank(table, Preferences(), NOW, 1).picks] == ["a"]
    assert rank([], Preferences(), NOW).picks == []
    assert rank(table, Preferences(min_notice=timedelta(days=30)), NOW).eligible == 0
    with pytest.raises(RankingError):
        SlotTable([Candidate("naive", datetime(2030, 1, 1), datetime(2030, 1, 2))])


def test_too_few_distinct_choices_are_filled_with_the_next_best() -> None:
    """One practitioner, one afternoon: three answers still, none at the same time."""
    afternoon = [
        Candidate(f"s{i}", s, s + timedelta(minutes=30), "Practitioner/a", NEAR)
        for i, s in enumerate(NOW + timedelta(days=1, minutes=30 * i) for i in range(6))
    ]
    picked = ids(Preferences(only_practitioners=frozenset({"Practitioner/a"})), afternoon)
    assert picked == ["s0", "s1", "s2"]
    twins = [slot("x", 1, 10), slot("y", 1, 10, "Practitioner/b")]
    assert ids(Preferences(), twins) == ["x"]
