"""The GMED path as an integration engineer sees it: `harmony serve`, `harmony gmed send` of
every fixture, then the appointments through FHIR R4 by placer or filler id."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.integration.harness import ROOT, running

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hl7v2"
TOKEN = {"Authorization": "Bearer harmony-dev-token"}

# (identifier, status, start, end): read off the messages by hand. Times without an offset are
# in America/New_York (the configured default); the fhirconv S12..S26 series shares one
# appointment and ends with the S26 no-show; the Mirth S14 then S15 ends cancelled.
EXPECTED = [
    ("149549015", "booked", "2024-11-06T17:00:00Z", "2024-11-06T17:30:00Z"),
    ("149549027", "cancelled", "2024-11-13T15:00:00Z", "2024-11-13T16:00:00Z"),
    ("49849903800", "booked", "2016-12-31T16:00:00Z", "2016-12-31T16:30:00Z"),
    ("12345", "noshow", "2021-09-24T07:15:00Z", "2021-09-24T08:05:00Z"),
    ("36996", "noshow", "2021-09-24T07:15:00Z", "2021-09-24T08:05:00Z"),
    ("10345", "cancelled", "2011-06-17T12:45:00Z", "2011-06-17T13:30:00Z"),
    ("2196178", "cancelled", "2011-06-17T12:45:00Z", "2011-06-17T13:30:00Z"),
]


def _search(port: int, path: str) -> dict:  # type: ignore[type-arg]
    response = httpx.get(f"http://127.0.0.1:{port}{path}", headers=TOKEN, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    return response.json()  # type: ignore[no-any-return]


def test_send_every_fixture_and_find_the_appointments(database_url: str) -> None:
    files = sorted(str(p) for p in FIXTURES.glob("*.hl7"))
    with running(database_url, HARMONY_DEFAULT_TIMEZONE="America/New_York") as hub:
        sent = subprocess.run(
            [
                sys.executable,
                "-c",
                "from hub.cli import main; main()",
                "gmed",
                "send",
                *files,
                "--port",
                str(hub.mllp_port),
            ],
            cwd=ROOT,
            env=hub.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        lines = sent.stdout.splitlines()
        assert len(lines) == len(files)
        for line in lines:
            name = line.split()[-1] if "no ACK" not in line else ""
            assert line.startswith(("AA ", "-- ")), line
            if line.startswith("-- "):  # ACKs and MSH-15 NE get no ACK, as the sender asked
                assert "ack" in line or "vinah" in line, (line, name)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stats = httpx.get(
                f"http://127.0.0.1:{hub.api_port}/api/messages/stats", headers=TOKEN
            ).json()
            if stats.get("received", 0) == 0 and stats.get("retrying", 0) == 0:
                break
            time.sleep(0.3)
        assert stats == {"processed": len(files) - 2, "filtered": 2}, stats

        for identifier, status, start, end in EXPECTED:
            bundle = _search(hub.api_port, f"/fhir/Appointment?identifier={identifier}")
            assert bundle["total"] == 1, identifier
            appointment = bundle["entry"][0]["resource"]
            assert (appointment["status"], appointment["start"], appointment["end"]) == (
                status,
                start,
                end,
            ), identifier
            references = [
                p["actor"]["reference"]
                for p in appointment["participant"]
                if "reference" in p.get("actor", {})
            ]
            assert references[0].startswith("Patient/"), identifier
            patient = appointment["participant"][0]["actor"]["reference"]
            by_patient = _search(hub.api_port, f"/fhir/Appointment?patient={patient}")
            assert appointment["id"] in [e["resource"]["id"] for e in by_patient["entry"]]

        multi = _search(hub.api_port, "/fhir/Appointment?identifier=36996")["entry"][0]
        kinds = sorted(
            p["actor"]["reference"].split("/")[0] for p in multi["resource"]["participant"]
        )
        assert kinds == ["Device", "Location", "Patient", "Practitioner"]
        busy = _search(hub.api_port, "/fhir/Slot?status=busy&_summary=count")
        assert busy["total"] > 0
