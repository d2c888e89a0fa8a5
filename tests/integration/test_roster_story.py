"""The roster story, played through the HTTP API by each role with their own sign-in.

An admin builds a month (shift types, physicians, a roster, its shifts in one bulk request)
and publishes it; a physician drops a shift, another picks it up and the admin approves;
two physicians swap and the admin approves; a pickup that would break the minimum rest is
refused with the rule, the person and the dates. Meanwhile a call-center agent watches the
live roster stream, notifications reach the right people (in-app, email, push), GMED
receives the roster as SIU messages, and /fhir serves the roster as Slots on Schedules of
PractitionerRoles.

The hub runs in this process (``running_hub``): the app on a real port through uvicorn and
the runtime started as ``harmony serve`` starts it, so every moving part is the real one,
while the ``engine`` fixture gives SQLite and PostgreSQL and the receivers (SMTP, GMED,
FCM) can be read directly.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from tests.integration.roster_story_support import (
    Person,
    RosterStream,
    add_user,
    eventually,
    expect,
    if_match,
    running_hub,
    sign_in,
)

ZONE = "America/New_York"
DOCTORS = {
    "ana": "Dr Ana Alves",
    "ben": "Dr Ben Brooks",
    "cara": "Dr Cara Chen",
    "dev": "Dr Dev Desai",
    "eve": "Dr Eve Evans",
}
ROTATION = ["ana", "cara", "ben", "dev", "eve"]
"""The order the doctors take the half-days of the month in."""


def month_after_next(today: date) -> tuple[date, date]:
    """First and last day of the month after next: far enough for the two days' notice."""
    year, month = divmod(today.month + 1, 12)
    first = date(today.year + year, month + 1, 1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, date.fromordinal(following.toordinal() - 1)


def rotation(days: int) -> dict[tuple[int, str], str]:
    """Day and night of every day, the five doctors in turn: each works every 60 hours."""
    return {
        (day, code): ROTATION[(2 * (day - 1) + k) % len(ROTATION)]
        for day in range(1, days + 1)
        for k, code in enumerate(("DAY", "NIGHT"))
    }


def test_the_roster_story(engine: Engine, tmp_path: Path) -> None:
    first, last = month_after_next(datetime.now(UTC).date())
    plan = rotation(last.day)
    with running_hub(engine, tmp_path) as hub, contextlib.ExitStack() as stack:
        # The people: an admin, a call-center agent (physicians' accounts come once the admin
        # has created their records).
        add_user(hub, "olga", {"admin"}, display_name="Olga Admin")
        add_user(hub, "carl", {"call_center"}, display_name="Carl Callcenter")
        admin, agent = sign_in(hub, "olga", stack), sign_in(hub, "carl", stack)

        # The admin defines the shift types.
        types = {
            code: expect(admin.post("/api/shift-types", body), 201)["id"]
            for code, body in {
                "DAY": _shift_type("DAY", "Medicine day", "day", "08:00", 720),
                "NIGHT": _shift_type("NIGHT", "Medicine night", "night", "20:00", 720),
                "EVE": _shift_type("EVE", "Medicine evening", "evening", "14:00", 480),
            }.items()
        }

        # ... creates the physicians; each gets an account linked to their record.
        doctor_ids: dict[str, int] = {}
        for username, name in DOCTORS.items():
            body = {"name": name, "specialties": ["im"], "locations": ["Main"]}
            doctor_ids[username] = expect(admin.post("/api/physicians", body), 201)["id"]
            add_user(hub, username, {"physician"}, physician_id=doctor_ids[username])
        ana, ben, cara, dev, eve = (sign_in(hub, u, stack) for u in DOCTORS)
        people = [admin, agent, ana, ben, cara, dev, eve]
        name_of = {doctor_ids[u]: name for u, name in DOCTORS.items()}

        # Dev has the app on his phone: a push device.
        device = {"token": "fcm:dev-phone", "platform": "android"}
        expect(dev.post("/api/notifications/devices", device), 201)

        # ... builds the month: a five-doctor rotation of days and nights, plus one evening
        # shift on the 6th left open, in one bulk request.
        roster = expect(
            admin.post(
                "/api/rosters",
                {
                    "name": first.strftime("Medicine %B %Y"),
                    "period_start": first.isoformat(),
                    "period_end": last.isoformat(),
                },
            ),
            201,
        )
        items: list[dict[str, Any]] = [
            {
                "op": "create",
                "roster_id": roster["id"],
                "shift_type_id": types[code],
                "date": first.replace(day=day).isoformat(),
                "physician_id": doctor_ids[who],
            }
            for (day, code), who in plan.items()
        ]
        items.append(
            {
                "op": "create",
                "roster_id": roster["id"],
                "shift_type_id": types["EVE"],
                "date": first.replace(day=6).isoformat(),
                "physician_id": None,
            }
        )
        created = expect(admin.post("/api/shifts/bulk", {"items": items}), 200)
        assert len(created) == len(items) == 2 * last.day + 1
        shift_of = {
            (date.fromisoformat(_local_day(s)).day, s["shift_type"]["code"]): s for s in created
        }

        # ... and publishes it (If-Match: the roster as the admin last read it).
        current = admin.get(f"/api/rosters/{roster['id']}")
        published = admin.post(f"/api/rosters/{roster['id']}/publish", headers=if_match(current))
        assert expect(published, 200)["status"] == "published"
        assert len(published.headers["X-Outbound-Messages"].split(",")) == len(items)
        for doctor in (ana, ben, cara, dev, eve):
            doctor.wait_for_notification("roster_published")
        # Building the draft was nobody's news: no "Shift changed" for the draft's shifts.
        drafts_told = {p.username: p.notification_kinds().count("shift_changed") for p in people}
        assert not any(drafts_told.values()), f"draft shifts announced as changes: {drafts_told}"

        # GMED gets one SIU^S12 per shift, the open one included (no AIP: nobody works it).
        eventually(
            lambda: len(hub.gmed_received()) >= len(items), "GMED to receive the published roster"
        )
        assert Counter(m.trigger for m in hub.gmed_received()) == {"S12": len(items)}
        assert {m.shift_id: m.physician_id for m in hub.gmed_received()} == {
            s["id"]: s["physician_id"] for s in created
        }

        # The call-center agent opens the live roster before anything changes.
        stream = RosterStream.open(agent, stack)
        assert stream.snapshot()["last_event_id"] > 0

        # Ana drops her day shift on the 11th (If-Match from the shift she read).
        dropped = shift_of[(11, "DAY")]
        assert dropped["physician_id"] == doctor_ids["ana"]
        read = ana.get(f"/api/shifts/{dropped['id']}")
        answer = expect(ana.post(f"/api/shifts/{dropped['id']}/drop", headers=if_match(read)), 200)
        assert answer["status"] == "open" and answer["physician_id"] is None
        stream.wait_for("drop", [dropped["id"]])
        # It is offered to who could take it: Ben and Dev; Cara (night of the 11th) and Eve
        # (night of the 10th) would not get their rest.
        for doctor in (ben, dev):
            offer = doctor.wait_for_notification("shift_open")
            assert offer["data"]["shift_ids"] == [dropped["id"]]
        assert _told(people, "shift_open") == {"ben", "dev"}

        # Ben sees it among his open shifts and asks for it.
        open_for_ben = expect(ben.get("/api/shifts/open"), 200)
        assert dropped["id"] in [s["id"] for s in open_for_ben]
        pickup = expect(ben.post(f"/api/shifts/{dropped['id']}/pickup", {"note": "I can"}), 201)
        assert pickup["status"] == "pending" and pickup["kind"] == "pickup"
        stream.wait_for("pickup", [dropped["id"]])
        admin.wait_for_notification("pickup_requested")

        # The admin approves it (If-Match: the request as read).
        read = admin.get(f"/api/shift-requests/{pickup['id']}")
        approved = admin.post(f"/api/shift-requests/{pickup['id']}/approve", headers=if_match(read))
        assert expect(approved, 200)["status"] == "approved"
        stream.wait_for("approve", [dropped["id"]])
        assert ben.wait_for_notification("request_approved")["data"]["request_id"] == pickup["id"]
        taken = expect(ben.get(f"/api/shifts/{dropped['id']}"), 200)
        assert taken["physician_id"] == doctor_ids["ben"] and taken["status"] == "assigned"

        # Cara offers Dev her night of the 16th for his night of the 17th.
        mine, theirs = shift_of[(16, "NIGHT")], shift_of[(17, "NIGHT")]
        assert (mine["physician_id"], theirs["physician_id"]) == (
            doctor_ids["cara"],
            doctor_ids["dev"],
        )
        on_roster = expect(cara.get("/api/shifts", roster_id=roster["id"]), 200)
        assert [s["physician_id"] for s in on_roster if s["id"] == theirs["id"]] == [
            doctor_ids["dev"]
        ]
        swap = expect(
            cara.post(
                f"/api/shifts/{mine['id']}/swap",
                {"counterparty_shift_id": theirs["id"], "note": "family visit"},
            ),
            201,
        )
        stream.wait_for("swap", [mine["id"], theirs["id"]])
        assert dev.wait_for_notification("swap_offered")["data"]["request_id"] == swap["id"]
        admin.wait_for_notification("swap_requested")

        # Dev accepts (If-Match: the request from his list).
        offered = expect(dev.get("/api/shift-requests", status="pending"), 200)
        assert [r["id"] for r in offered] == [swap["id"]]
        read = dev.get(f"/api/shift-requests/{swap['id']}")
        accepted = dev.post(f"/api/shift-requests/{swap['id']}/accept", headers=if_match(read))
        assert expect(accepted, 200)["status"] == "accepted"
        stream.wait_for("accept", [mine["id"], theirs["id"]])
        cara.wait_for_notification("swap_accepted")
        admin.wait_for_notification("swap_awaiting_approval")

        # The admin approves the swap.
        read = admin.get(f"/api/shift-requests/{swap['id']}")
        approved = admin.post(f"/api/shift-requests/{swap['id']}/approve", headers=if_match(read))
        assert expect(approved, 200)["status"] == "approved"
        stream.wait_for("approve", [mine["id"], theirs["id"]])
        for person in (cara, dev, agent):
            person.wait_for_notification("swap_approved")
        assert (
            expect(cara.get(f"/api/shifts/{theirs['id']}"), 200)["physician_id"]
            == (doctor_ids["cara"])
        )
        assert (
            expect(dev.get(f"/api/shifts/{mine['id']}"), 200)["physician_id"] == (doctor_ids["dev"])
        )

        # Eve, off her night of the 5th at 08:00, wants the open evening of the 6th at 14:00:
        # it is not among her open shifts, she asks anyway and is refused, naming the rule,
        # her and the dates.
        evening = shift_of[(6, "EVE")]
        assert plan[(5, "NIGHT")] == "eve"
        assert evening["id"] not in [s["id"] for s in expect(eve.get("/api/shifts/open"), 200)]
        refused = expect(eve.post(f"/api/shifts/{evening['id']}/pickup"), 409)
        assert refused["rule"] == "conflict"
        [conflict] = refused["conflicts"]
        assert conflict["rule"] == "min_rest"
        assert conflict["physician"] == DOCTORS["eve"]
        assert conflict["physician_id"] == doctor_ids["eve"]
        assert first.replace(day=6).isoformat() in conflict["dates"]
        assert {conflict["shift_id"], conflict["other_shift_id"]} == {
            evening["id"],
            shift_of[(5, "NIGHT")]["id"],
        }
        assert "min_rest" in refused["detail"] and DOCTORS["eve"] in refused["detail"]
        assert "only 6 h" in refused["detail"]
        assert expect(eve.get("/api/shift-requests"), 200) == []

        # The stream showed every change, in order, and nothing else.
        assert stream.kinds() == ["drop", "pickup", "approve", "swap", "accept", "approve"]

        # Notifications reached the right people, and only them.
        expected = {
            "olga": ["pickup_requested", "swap_requested", "swap_awaiting_approval"],
            "carl": ["swap_approved"],
            "ana": ["roster_published"],
            "ben": ["roster_published", "shift_open", "request_approved"],
            "cara": ["roster_published", "swap_accepted", "swap_approved"],
            "dev": ["roster_published", "shift_open", "swap_offered", "swap_approved"],
            "eve": ["roster_published"],
        }
        assert {p.username: p.notification_kinds() for p in people} == expected

        # ... by email too (everyone has an address), and by push on Dev's phone.
        emails = Counter((p.email, n["title"]) for p in people for n in p.notifications())
        assert emails[("carl@clinic.test", "On-call change")] == 1
        eventually(
            lambda: len(hub.mailbox.received) >= emails.total(),
            "every notification to arrive by email",
        )
        assert Counter((m.to, m.subject) for m in hub.mailbox.received) == {
            ((to,), subject): n for (to, subject), n in emails.items()
        }
        dev_titles = [n["title"] for n in dev.notifications()]
        eventually(
            lambda: len(hub.pushed()) >= len(dev_titles), "Dev's pushes to reach the FCM sandbox"
        )
        assert hub.pushed() == [("fcm:dev-phone", title) for title in dev_titles]

        # GMED received the changes after the approvals: the drop (open, no AIP), the pickup
        # (Ben), the swap (both shifts, each with its new physician); each SIU^S14.
        changes = [
            ("S14", dropped["id"], None),
            ("S14", dropped["id"], doctor_ids["ben"]),
            ("S14", mine["id"], doctor_ids["dev"]),
            ("S14", theirs["id"], doctor_ids["cara"]),
        ]
        eventually(
            lambda: len(hub.gmed_received()) >= len(items) + len(changes),
            "GMED to receive the changes",
        )
        after_publish = hub.gmed_received()[len(items) :]
        assert Counter((m.trigger, m.shift_id, m.physician_id) for m in after_publish) == (
            Counter(changes)
        )

        # FHIR: the month as busy Slots, each on the Schedule of a PractitionerRole of the
        # physician who works it now.
        final = expect(admin.get("/api/shifts", roster_id=roster["id"]), 200)
        works = {s["id"]: name_of[s["physician_id"]] for s in final if s["status"] == "assigned"}
        assert len(works) == 2 * last.day
        assert works[dropped["id"]] == DOCTORS["ben"]
        assert (works[mine["id"]], works[theirs["id"]]) == (DOCTORS["dev"], DOCTORS["cara"])
        assert _fhir_roster(agent, first, last) == works

        stream.response.close()


def _shift_type(code: str, name: str, kind: str, start: str, minutes: int) -> dict[str, Any]:
    return {
        "code": code,
        "name": name,
        "kind": kind,
        "start_time": start,
        "duration_minutes": minutes,
        "service": "Medicine",
        "location": "Main",
        "timezone": ZONE,
        "required_specialties": ["im"],
    }


def _local_day(shift: dict[str, Any]) -> str:
    """The shift's start date in its own zone."""
    start = datetime.fromisoformat(shift["start"].replace("Z", "+00:00"))
    return start.astimezone(ZoneInfo(shift["shift_type"]["timezone"])).date().isoformat()


def _told(people: list[Person], kind: str) -> set[str]:
    """Who holds a notification of ``kind`` (each read from their own list)."""
    return {p.username for p in people if kind in p.notification_kinds()}


def _utc_midnight(day: date, days_after: int = 0) -> str:
    """The start of a local day of the roster's zone, as a UTC instant."""
    local = datetime.combine(date.fromordinal(day.toordinal() + days_after), datetime.min.time())
    instant = local.replace(tzinfo=ZoneInfo(ZONE)).astimezone(UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def _fhir_roster(reader: Person, first: date, last: date) -> dict[int, str]:
    """Shift id -> the practitioner's name, from /fhir: busy Slots starting in the month
    (local time), each through its Schedule to the PractitionerRole that is its actor."""
    url: str | None = "/fhir/Slot"
    params: dict[str, Any] | None = {
        "start": [f"ge{_utc_midnight(first)}", f"lt{_utc_midnight(last, days_after=1)}"],
        "status": "busy",
        "_count": 100,
    }
    seen: dict[str, str] = {}
    out: dict[int, str] = {}
    while url:
        bundle = expect(reader.http.get(url, params=params), 200)
        assert bundle["resourceType"] == "Bundle"
        for entry in bundle.get("entry", []):
            slot = entry["resource"]
            [shift] = [
                i["value"] for i in slot["identifier"] if i["system"] == "urn:harmony:roster:shift"
            ]
            schedule_ref = slot["schedule"]["reference"]
            if schedule_ref not in seen:
                schedule = expect(reader.http.get(f"/fhir/{schedule_ref}"), 200)
                [actor] = schedule["actor"]
                assert actor["reference"].startswith("PractitionerRole/"), actor
                role = expect(reader.http.get(f"/fhir/{actor['reference']}"), 200)
                assert role["resourceType"] == "PractitionerRole"
                seen[schedule_ref] = role["practitioner"]["display"]
            out[int(shift)] = seen[schedule_ref]
        url = next(
            (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
        )
        params = None
    return out
