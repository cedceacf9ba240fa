"""The example campaigns through ``followup simulate``, checked line by line against reviewed
plans (``tests/e2e/stories/*expected_plan.jsonl``), on a real process and real files.

The stories: Ann leaves 240.00 of boots (abandoned cart: email, then the call list for a high-value
cart, deferred into calling hours in New York); Bob browses anonymously, subscribes and orders a day
later (welcome series: welcome, then no discount since he ordered; cart: email, ad audience, removed
at the order; conversions); Cara buys in the shop (post-purchase: review request at 10:00 Paris time,
then the cross-sell); Dan's call ends "interested" (call-center follow-up, skipped: no email consent);
everyone with consent gets the Monday newsletter. Win-back: Gus and Hal lapse 90 days after their
last order, as time passes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.e2e.cli import run_followup

ROOT = Path(__file__).resolve().parents[2]
STORIES = ROOT / "docs" / "examples" / "stories"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "campaigns", tmp_path / "campaigns")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    return tmp_path


def simulate(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_followup(project, "simulate", *args)


def test_the_stories_give_the_reviewed_plan_byte_for_byte(project: Path) -> None:
    result = simulate(project, "--events", str(STORIES / "events.jsonl"))
    assert result.returncode == 0, result.stderr
    expected = (STORIES / "expected_plan.jsonl").read_text()
    assert result.stdout.splitlines() == expected.splitlines()
    again = simulate(project, "--events", str(STORIES / "events.jsonl"))
    assert again.stdout == result.stdout


def test_every_example_campaign_acts_in_the_stories() -> None:
    plans = [
        orjson.loads(line)
        for name in ("expected_plan.jsonl", "win_back_expected_plan.jsonl")
        for line in (STORIES / name).read_text().splitlines()
    ]
    campaigns = {path.stem.replace("_", "-") for path in (ROOT / "campaigns").glob("*.yaml")}
    acting = {line["campaign"] for line in plans if line["action"] == "send"}
    assert acting == campaigns


def test_win_back_enters_as_time_passes(project: Path) -> None:
    result = simulate(
        project,
        "--events",
        str(STORIES / "win_back_events.jsonl"),
        "--campaigns",
        "campaigns/win_back.yaml",
        "--until",
        "2024-07-15T00:00:00Z",
    )
    assert result.returncode == 0, result.stderr
    expected = (STORIES / "win_back_expected_plan.jsonl").read_text()
    assert result.stdout.splitlines() == expected.splitlines()


def test_config_on_the_command_and_policies_apply(project: Path) -> None:
    (project / "shop.yaml").write_text(
        "timezone: UTC\npolicies:\n  suppression: [ann@example.com]\n"
    )
    result = simulate(project, "--events", str(STORIES / "events.jsonl"), "--config", "shop.yaml")
    assert result.returncode == 0, result.stderr
    ann = [orjson.loads(line) for line in result.stdout.splitlines()]
    ann = [line for line in ann if line["customer"]["user_id"] == "ann" and "status" in line]
    assert ann and {(line["status"], line.get("reason")) for line in ann} == {
        ("skipped", "suppressed")
    }


def test_bad_lines_are_named_and_the_rest_is_simulated(project: Path) -> None:
    events = project / "events.jsonl"
    events.write_text((STORIES / "events.jsonl").read_text() + '{"type": "track"\n')
    result = simulate(project, "--events", str(events))
    assert result.returncode == 1
    assert f"{events}:10:" in result.stderr
    assert len(result.stdout.splitlines()) == len(
        (STORIES / "expected_plan.jsonl").read_text().splitlines()
    )


def test_an_invalid_campaign_stops_the_simulation_with_its_line(project: Path) -> None:
    (project / "campaigns" / "broken.yaml").write_text(
        "campaign: broken\ntrigger: {event: X}\nsteps:\n  - wait: soon\n"
    )
    result = simulate(project, "--events", str(STORIES / "events.jsonl"))
    assert result.returncode == 1
    assert "broken.yaml:4:" in result.stderr
    assert result.stdout == ""


def test_summary_gives_figures_per_campaign(project: Path) -> None:
    result = simulate(project, "--events", str(STORIES / "events.jsonl"), "--summary")
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    cart = [cell.strip() for cell in rows["abandoned-cart"].split("│")[1:-1]]
    assert cart == [
        "abandoned-cart",
        "2",
        "0",
        "audience_add 1, audience_remove 1, call 1, email 2",
        "-",
        "exit_event 1",
        "1",
        "24.00",
        "",  # why none: it has entries
    ]
    assert "no_consent 1" in rows["call-center-follow-up"]
    assert "no entries: the segment held for nobody" in rows["win-back"]
