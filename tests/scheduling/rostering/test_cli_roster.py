"""``harmony roster solve`` on Instance1: the figures, the evaluator's verdict, the CSV."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hub.cli_roster import app
from scheduling.rostering.csv_out import read_roster_csv
from scheduling.rostering.curtois import read_curtois
from scheduling.rostering.evaluator import evaluate

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
