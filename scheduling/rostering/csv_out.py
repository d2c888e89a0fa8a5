"""The roster as CSV (``staff,day,shift``, one row per assignment, days from 0), the form
benchmark validators and spreadsheets read."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

HEADER = ("staff", "day", "shift")


def roster_csv(roster: Iterable[tuple[str, int, str]]) -> str:
    """The CSV text, rows ordered by staff, then day."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(sorted(roster))
    return out.getvalue()


def write_roster_csv(path: Path, roster: Iterable[tuple[str, int, str]]) -> None:
    """Write :func:`roster_csv` to ``path``."""
    path.write_text(roster_csv(roster), encoding="utf-8")


def read_roster_csv(path: Path) -> list[tuple[str, int, str]]:
    """Read a file written by :func:`write_roster_csv` (to re-check a roster later)."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(handle)
        return [(row["staff"], int(row["day"]), row["shift"]) for row in rows]
