"""``followup simulate --summary`` lists every campaign, also one nobody entered, and says why;
with nothing to show it says so in a sentence, never an empty table."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson

from tests.e2e.cli import run_followup

ROOT = Path(__file__).resolve().parents[2]
STORIES = ROOT / "docs" / "examples" / "stories"
PICKY = """campaign: big-carts
trigger: {event: Product Added, where: event.properties.price > 1000}
steps:
  - send: email
    template: abandoned_cart.html
    subject: Big
"""


def _summary(project: Path, events: Path) -> str:
    wide = {"COLUMNS": "400"}  # no cell wrapped
    result = run_followup(project, "simulate", "--events", str(events), "--summary", env=wide)
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())  # the table's cells, whatever the wrapping


def test_every_campaign_has_a_row_and_a_quiet_one_says_why(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "campaigns", tmp_path / "campaigns")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    (tmp_path / "campaigns" / "big_carts.yaml").write_text(PICKY)
    shown = _summary(tmp_path, STORIES / "events.jsonl")
    for campaign in ("abandoned-cart", "welcome-series", "win-back", "big-carts"):
        assert campaign in shown
    assert "why none" in shown
    assert "no entries: `where:` refused 2" in shown  # the stories' two Product Added
    assert "no entries: the segment held for nobody" in shown  # win-back within a week


def test_a_campaign_whose_trigger_never_came_says_so(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "big_carts.yaml").write_text(PICKY)
    events = tmp_path / "events.jsonl"
    page = {"type": "page", "userId": "u", "messageId": "p1", "timestamp": "2024-05-06T09:00:00Z"}
    events.write_bytes(orjson.dumps(page) + b"\n")
    assert "no entries: no 'Product Added' events" in _summary(tmp_path, events)
    events.write_bytes(b"")  # no events at all: still the row and why, not an empty table
    assert "no entries: no 'Product Added' events" in _summary(tmp_path, events)
