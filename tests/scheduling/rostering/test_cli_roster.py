"""``harmony roster solve`` on Instance1: the figures, the evaluator's verdict, the CSV."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, select
from typer.testing import CliRunner

from hub.cli_roster import app, render_bar
from scheduling.rostering.csv_out import read_roster_csv
from scheduling.rostering.curtois import read_curtois
from scheduling.rostering.evaluator import evaluate
from scheduling.tables import roster_generation_jobs, shifts
from tests.hub.test_roster_jobs import COVERAGE, OPTIONS, seed_clinic

INSTANCE1 = Path("/work/shared/fixtures/rostering/Instance1.txt")


def test_solve_instance1_prints_figures_and_writes_csv(tmp_path: Path) -> None:
    out = tmp_path / "roster.csv"
    result = CliRunner().invoke(
        app,
        ["solve", "--curtois", str(INSTANCE1), "--time-limit", "60", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "objective       607" in lines
    assert "bound           607" in lines
    assert "evaluator       feasible, objective 607 (agrees)" in lines
    assert any(line.startswith("first feasible  ") and line.endswith(" s") for line in lines)
    assert out.read_text().splitlines()[0] == "staff,day,shift"
    roster = read_roster_csv(out)
    assert all(day in range(14) and shift == "D" for _, day, shift in roster)
    assert evaluate(read_curtois(INSTANCE1), roster).objective == 607


def test_malformed_instance_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("SECTION_HORIZON\nfourteen\n")
    result = CliRunner().invoke(app, ["solve", "--curtois", str(bad), "--time-limit", "1"])
    assert result.exit_code == 2
    assert "'fourteen' is not an integer" in result.output


# --- generate: a draft roster in the database, as a job ---------------------------------------


def _coverage_file(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "coverage.json"
    path.write_text(json.dumps(data))
    return path


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_generate_fills_the_draft_and_prints_the_report(engine: Engine, tmp_path: Path) -> None:
    roster = seed_clinic(engine, people=4, days=7)
    options = {**OPTIONS, "min_load": 0}
    coverage = _coverage_file(tmp_path, {"coverage": COVERAGE, "options": options})
    args = ["generate", "--roster", str(roster), "--coverage", str(coverage)]
    result = CliRunner().invoke(app, [*args, "--time-limit", "2", "--database-url", _url(engine)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"generating      roster {roster} as job ")
    assert any(re.fullmatch(r"job             \d+ succeeded", line) for line in lines)
    assert any(re.fullmatch(r"objective       \d+", line) for line in lines)
    assert any(re.fullmatch(r"bound           \d+", line) for line in lines)
    assert any(line.startswith("violations      ") for line in lines)
    assert sum(1 for line in lines if re.match(r"  Dr \d +FTE", line)) == 4
    with engine.connect() as conn:
        job = conn.execute(select(roster_generation_jobs)).one()
        created = conn.execute(select(shifts.c.id).where(shifts.c.roster_id == roster)).all()
    assert job.state == "succeeded" and job.created_by.startswith("cli:")
    assert len(created) == len(job.report["created_shift_ids"]) > 0


def test_generate_refuses_bad_input_before_any_job(engine: Engine, tmp_path: Path) -> None:
    roster = seed_clinic(engine, people=2, days=7)
    url = ["--database-url", _url(engine), "--time-limit", "2"]
    unknown = _coverage_file(tmp_path, [{"code": "SWING", "required": 1}])
    result = CliRunner().invoke(
        app, ["generate", "--roster", str(roster), "--coverage", str(unknown), *url]
    )
    assert result.exit_code == 2
    assert "unknown shift type codes ['SWING']" in result.output
    malformed = _coverage_file(tmp_path, [{"code": "DAY"}])
    result = CliRunner().invoke(
        app, ["generate", "--roster", str(roster), "--coverage", str(malformed), *url]
    )
    assert result.exit_code == 2
    assert "coverage[0]: missing required" in result.output
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--roster",
            "999",
            "--coverage",
            str(_coverage_file(tmp_path, COVERAGE)),
            *url,
        ],
    )
    assert result.exit_code == 2
    assert "roster 999 does not exist" in result.output
    with engine.connect() as conn:
        assert conn.execute(select(roster_generation_jobs)).all() == []


def test_ctrl_c_stops_generate_and_keeps_the_best_roster(engine: Engine, tmp_path: Path) -> None:
    roster = seed_clinic(engine)
    coverage = _coverage_file(tmp_path, {"coverage": COVERAGE, "options": OPTIONS})
    command = (
        f"from hub.cli_roster import app; app(['generate', '--roster', '{roster}', "
        f"'--coverage', '{coverage}', '--time-limit', '60', '--database-url', "
        f"{_url(engine)!r}])"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", command],
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 40
        objective = None
        while objective is None and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
            with engine.connect() as conn:
                objective = conn.execute(select(roster_generation_jobs.c.objective)).scalar()
        assert objective is not None, "no progress written"
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "stopping: the best roster so far is kept" in output
    assert re.search(r"^job             \d+ stopped$", output, re.M), output
    with engine.connect() as conn:
        job = conn.execute(select(roster_generation_jobs)).one()
        count = len(conn.execute(select(shifts.c.id).where(shifts.c.roster_id == roster)).all())
    assert job.state == "stopped" and job.report["status"] == "FEASIBLE"
    assert count == len(job.report["created_shift_ids"]) > 0


def test_render_bar_shows_time_best_bound_and_gap() -> None:
    assert render_bar(15, 60, 200, 190, width=8) == (
        "[##......]   15.0/60 s  best      200  bound      190  gap   5.0%"
    )
    assert render_bar(0.5, 10, None, float("-inf"), width=4) == (
        "[....]    0.5/10 s  best        -  bound        -  gap      -"
    )
    assert render_bar(99, 10, 5, 5, width=4).startswith("[####]   99.0/10 s")
