"""``policies.max_delay``: a backfill of old events, ingested and ticked, does not send last
month's welcome now; a recent one still goes. What ``simulate`` plans is unchanged (it decides
each send at its own time, so nothing is ever late there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from tests.durable.harness import HELLO_CAMPAIGN
from tests.e2e.cli import run_followup

NOW = "2024-06-01T12:00:00Z"


def _signup(user: str, at: str) -> list[dict[str, Any]]:
    return [
        {"type": "identify", "userId": user, "messageId": f"{user}-i", "timestamp": at,
         "traits": {"email": f"{user}@example.com"}},
        {"type": "track", "event": "Subscribed", "userId": user, "messageId": f"{user}-s",
         "timestamp": at, "properties": {"list": "news"}},
    ]  # fmt: skip


def _project(folder: Path, policies: str) -> Path:
    (folder / "campaigns").mkdir()
    (folder / "templates").mkdir()
    (folder / "campaigns" / "hello.yaml").write_text(HELLO_CAMPAIGN)
    (folder / "templates" / "hello.html").write_text("<p>Hello</p>\n")
    (folder / "followup.yaml").write_text(f"timezone: UTC\n{policies}")
    messages = _signup("old", "2024-05-01T09:00:00Z") + _signup("new", "2024-06-01T09:00:00Z")
    (folder / "events.jsonl").write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    return folder


def _statuses(folder: Path) -> dict[str, tuple[str, str | None]]:
    engine = sa.create_engine(f"sqlite:///{folder / 'followup.db'}")
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT customer_id, status, detail FROM outbox").all()
    engine.dispose()
    return {customer: (status, detail) for customer, status, detail in rows}


def _run(folder: Path, *args: str) -> str:
    result = run_followup(folder, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_a_send_past_max_delay_is_skipped_as_stale_and_a_recent_one_goes(tmp_path: Path) -> None:
    shop = _project(tmp_path, "policies:\n  max_delay: {email: 2d}\n")
    _run(shop, "validate")
    planned = _run(shop, "simulate", "--events", "events.jsonl")
    assert planned.count('"status":"sent"') == 2  # the backtest: both at their own time
    _run(shop, "ingest", "events.jsonl")
    _run(shop, "tick", "--now", NOW)
    old, new = (_run(shop, "customers", "show", user, "--json") for user in ("old", "new"))
    statuses = _statuses(shop)
    old_status, old_detail = statuses[orjson.loads(old)["id"]]
    assert old_status == "skipped"
    assert old_detail == (
        "stale: decided for 2024-05-01T09:00Z, 31 days before delivery, past policies.max_delay"
        " email of 2d"
    )
    assert statuses[orjson.loads(new)["id"]][0] == "delivered"
    explained = _run(shop, "explain", "--customer", "old")
    assert "not delivered: checked again at delivery" in explained
    assert "skipped: stale: decided for 2024-05-01T09:00Z" in explained
    assert len(list((shop / "outbox").rglob("*.eml"))) == 1


def test_without_max_delay_the_backfill_is_delivered_as_before(tmp_path: Path) -> None:
    shop = _project(tmp_path, "")
    _run(shop, "ingest", "events.jsonl")
    _run(shop, "tick", "--now", NOW)
    assert sorted(status for status, _ in _statuses(shop).values()) == ["delivered", "delivered"]


def test_a_max_delay_of_no_channel_is_refused(tmp_path: Path) -> None:
    shop = _project(tmp_path, "policies:\n  max_delay: {emial: 2d}\n")
    result = run_followup(shop, "validate")
    assert result.returncode == 1
    assert "followup.yaml:3:15: unknown key 'emial'" in result.stdout
