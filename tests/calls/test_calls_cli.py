"""``followup calls`` on a real project folder with the ``calllist`` provider: a campaign puts a
customer on a call list, the dialer CSV is exported inside her calling window, the dialer's
results come back as ``Call Completed`` events, and the call-center follow-up campaign emails her.
The real command line in process (typer's runner; a process start costs seconds here), real
files, real exit codes; SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from engine.cli.app import app
from engine.storage.tables import events

ROOT = Path(__file__).resolve().parents[2]

CALLBACK = """\
campaign: callback
name: Call back who asked
status: active
trigger:
  event: Callback Requested
steps:
  - send: call
    list: callbacks
    priority: high
    reason: callback_requested
    script: "Thank {{ customer.first_name }}; ask about the order"
"""

CONFIG = """\
timezone: UTC
providers:
  call: {provider: calllist, path: dialer}
"""

EVENTS = [
    {
        "type": "identify",
        "userId": "u1",
        "messageId": "m1",
        "timestamp": "2024-06-03T13:00:00Z",
        "traits": {
            "email": "ann@example.com",
            "phone": "(415) 555-0100",
            "firstName": "=Ann",
            "timezone": "America/Chicago",
            "consent": {"call": True, "email": True},
        },
    },
    {
        "type": "track",
        "event": "Callback Requested",
        "userId": "u1",
        "messageId": "m2",
        "timestamp": "2024-06-03T13:30:00Z",
    },
]


@pytest.fixture
def project(tmp_path: Path, database_url: str) -> tuple[Path, dict[str, str]]:
    """A project folder with the callback campaign and the call-center follow-up."""
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "callback.yaml").write_text(CALLBACK)
    shutil.copy(ROOT / "campaigns" / "call_center_follow_up.yaml", tmp_path / "campaigns")
    (tmp_path / "followup.yaml").write_text(CONFIG)
    (tmp_path / "events.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in EVENTS))
    return tmp_path, {"FOLLOWUP_DATABASE_URL": database_url}


def _runner(folder: Path, env: dict[str, str]) -> Callable[..., str]:
    """``followup --config FOLDER/followup.yaml ARGS``: its output, its exit code checked."""

    def run(*args: str, code: int = 0) -> str:
        config = str(folder / "followup.yaml")
        done = CliRunner().invoke(app, ["--config", config, *args], env=env)
        assert done.exit_code == code, done.output
        return " ".join(done.output.split())

    return run


def test_the_dialer_round_trip(project: tuple[Path, dict[str, str]]) -> None:
    folder, env = project
    run = _runner(folder, env)

    run("ingest", str(folder / "events.jsonl"))
    run("tick", "--now", "2024-06-03T14:00:00Z")
    header = "list pending exported called suppressed total"
    assert run("calls", "lists").startswith(header)
    assert "callbacks 1 0 0 0 1" in run("calls", "lists")

    late = folder / "late.csv"  # 22:00 in Chicago: her window is over for the day
    assert "exported 0 entries of callbacks" in run(
        "calls",
        "export",
        "--list",
        "callbacks",
        "--now",
        "2024-06-04T03:00:00Z",
        "--out",
        str(late),
    )
    assert late.read_text().count("\n") == 1  # the header alone

    exported = run("calls", "export", "--list", "callbacks", "--now", "2024-06-03T14:05:00Z")
    path = folder / "dialer" / "callbacks-20240603T140500Z.csv"
    assert f"exported 1 entries of callbacks to {path}" in exported
    with path.open(encoding="utf-8", newline="") as handle:
        [row] = list(csv.DictReader(handle))
    entry = row.pop("entry_id")
    assert entry.startswith("call_")
    assert row == {
        "contact_id": row["contact_id"],
        "phone_e164": "+14155550100",
        "first_name": "'=Ann",
        "last_name": "",
        "timezone": "America/Chicago",
        "call_window_start_local": "08:00",
        "call_window_end_local": "21:00",
        "not_before_utc": "2024-06-03T14:05:00Z",
        "not_after_utc": "2024-06-04T02:00:00Z",
        "priority": "high",
        "reason": "callback_requested",
        "campaign": "callback",
        "cart_value": "0.00",
        "script": "Thank =Ann; ask about the order",  # rendered for her
        "dnc_checked_at": "2024-06-03T14:05:00Z",
    }
    assert row["contact_id"].startswith("c_")

    results = folder / "results.csv"
    results.write_text(
        f"entry_id,outcome,called_at,agent,note\n{entry},interested,2024-06-03T15:00:00Z,a7,boots\n"
    )
    assert "1 outcomes recorded, 0 already recorded, 0 problems" in run(
        "calls", "outcomes", "--from", str(results)
    )
    assert "0 outcomes recorded, 1 already recorded, 0 problems" in run(
        "calls", "outcomes", "--from", str(results)
    )
    refused = run("calls", "outcome", entry, "--outcome", "busy", code=1)
    assert "the outcome interested is already recorded" in refused

    run("tick", "--now", "2024-06-03T15:30:00Z")
    [email] = list((folder / "outbox" / "email").glob("*.eml"))
    assert "Subject: Thanks for your call, =Ann" in email.read_text()

    db = sa.create_engine(env["FOLLOWUP_DATABASE_URL"])
    with db.connect() as conn:
        logged = conn.execute(
            sa.select(events.c.message_id, events.c.user_id).where(
                events.c.name == "Call Completed"
            )
        ).all()
    db.dispose()
    assert [tuple(row) for row in logged] == [(f"call-outcome:{entry}", "u1")]
    assert "callbacks 0 0 1 0 1" in run("calls", "lists")


def test_the_do_not_call_list(project: tuple[Path, dict[str, str]]) -> None:
    folder, env = project
    run = _runner(folder, env)

    assert run("calls", "dnc", "add", "(415) 555-0100", "+14155550100", "+44 20 7946 0958") == (
        "added +14155550100, +442079460958; already on the list: none"
    )
    assert "+14155550100" in run("calls", "dnc", "list")
    assert "not a possible phone number: 12" in run("calls", "dnc", "add", "12", code=2)

    run("ingest", str(folder / "events.jsonl"))
    run("tick", "--now", "2024-06-03T14:00:00Z")  # the call is refused: do-not-call
    assert "no call lists yet" in run("calls", "lists")
    explained = run("explain", "--customer", "u1", "--campaign", "callback")
    assert "skipped: suppressed: do-not-call" in explained
    assert "FAILED" not in explained  # a skip for the customer's sake, not a fault
    assert "FAILED" not in run("status")

    assert run("calls", "dnc", "remove", "+14155550100", "+15005550006") == (
        "removed +14155550100; not on the list: +15005550006"
    )
    assert "+14155550100" not in run("calls", "dnc", "list")
    assert "--outcome: outcome 'maybe'" in run(
        "calls", "outcome", "x", "--outcome", "maybe", code=2
    )
