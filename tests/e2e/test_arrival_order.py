"""Events with the same timestamp apply in the order they were received, never by messageId
(CAMPAIGN_FORMAT.md, simulate): Segment's libraries send ``Product Added`` and ``Order
Completed`` in the same millisecond with random messageIds, and the order must still win.

Each buyer's order sorts before their add by messageId here, so ordering by messageId would
leave the cart full and send the abandoned-cart email; by arrival the cart is empty and the
order ends the journey. Checked through ``simulate``, ``ingest`` and ``tick``, as a user runs
them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.cli import run_followup

ROOT = Path(__file__).resolve().parents[2]
AT = "2024-05-06T09:00:00.123Z"
BUYERS = 12


def _messages() -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for n in range(BUYERS):
        user = f"buyer-{n}"
        messages.append(
            {
                "type": "identify",
                "userId": user,
                "messageId": f"m-{n}-0",
                "timestamp": "2024-05-06T08:00:00Z",
                "traits": {"email": f"{user}@example.com", "consent": {"email": True}},
            }
        )
        add = {
            "type": "track",
            "event": "Product Added",
            "userId": user,
            "messageId": f"z-{n}-add",  # sorts after the order's id
            "timestamp": AT,
            "properties": {"product_id": "boots", "price": 240, "quantity": 1},
        }
        order = {
            "type": "track",
            "event": "Order Completed",
            "userId": user,
            "messageId": f"a-{n}-order",
            "timestamp": AT,
            "properties": {"order_id": f"o-{n}", "revenue": 240},
        }
        if n % 2:  # half of them in one batch line, as a client library sends them
            messages.append({"type": "batch", "batch": [add, order]})
        else:
            messages.extend([add, order])
    return messages


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    (tmp_path / "followup.yaml").write_text("timezone: UTC\n")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    (tmp_path / "campaigns").mkdir()
    shutil.copy(ROOT / "campaigns" / "abandoned_cart.yaml", tmp_path / "campaigns")
    lines = b"".join(orjson.dumps(m) + b"\n" for m in _messages())
    (tmp_path / "events.jsonl").write_bytes(lines)
    return tmp_path


def _ok(shop: Path, *args: str) -> str:
    result = run_followup(shop, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_simulate_applies_same_instant_events_in_file_order(shop: Path) -> None:
    plan = [
        orjson.loads(line)
        for line in _ok(shop, "simulate", "--events", "events.jsonl").splitlines()
    ]
    sends = [line for line in plan if line["action"] == "send"]
    assert sends == []
    exits = [line for line in plan if line["action"] == "exit"]
    assert len(exits) == BUYERS  # each order came after its add, so it ends the journey
    assert all(line["at"] == "2024-05-06T09:00:00.123Z" for line in exits)


def test_ingest_and_tick_apply_same_instant_events_in_file_order(shop: Path) -> None:
    _ok(shop, "ingest", "events.jsonl")
    for n in range(BUYERS):
        profile = orjson.loads(_ok(shop, "customers", "show", f"buyer-{n}", "--json"))
        assert profile["state"]["cart"]["items"] == [], n
        assert profile["state"]["orders"]["count"] == 1
    _ok(shop, "tick", "--now", "2024-05-20T00:00:00Z")
    assert not list((shop / "outbox" / "email").glob("*.eml"))
    # the tick decided what simulate planned: every journey exited on its order
    result = run_followup(shop, "status", "--json")
    assert result.returncode == 0, result.stderr
