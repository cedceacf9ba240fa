"""The floors of the engine's two durable phases: the same row work as followup, nothing else.

``durable_run`` times followup taking N customers' events (an identify and a cart add each) into
the abandoned-cart campaign (a journey, a 1h timer, a membership and a decision each), then the
N due timers (an email decided: the journey moved on, the timer gone, an outbox row with the
rendered subject and body, a decision). These do the same reads and writes on a copy of the
database taken just before each phase, by plain ``sqlite3``: pages of 500 customers, each one
transaction (WAL, ``synchronous=FULL``, as followup runs), bulk statements (``IN`` lists and
``executemany``), one JSON encode per document written and one decode per document read, the
"decisions" made with f-strings and dicts. No campaign logic, no policies: a floor.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

PAGE = 500  # customers per transaction, as followup's batch_size


def _connect(database: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _documents(conn: sqlite3.Connection, table: str, ids: Sequence[str]) -> dict[str, Any]:
    """The ``state`` column of ``table``'s rows ``ids``, decoded, by id."""
    rows = conn.execute(f"SELECT id, state FROM {table} WHERE id IN ({_marks(ids)})", ids)
    return {row_id: json.loads(state) for row_id, state in rows}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def events_floor(database: Path, now: str) -> int:
    """Take every inbox event due by ``now`` into journeys and timers; how many events."""
    conn = _connect(database)
    taken = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(
            "SELECT i.message_id, e.customer_id, e.type, e.name, e.timestamp, e.payload"
            " FROM journey_inbox i JOIN events e ON e.message_id = i.message_id"
            " WHERE i.timestamp <= ? ORDER BY i.timestamp, i.seq LIMIT ?",
            (now, 2 * PAGE),
        ).fetchall()
        if not rows:
            conn.execute("COMMIT")
            return taken
        ids = sorted({row[1] for row in rows})
        states = _documents(conn, "customers", ids)
        for table in ("journeys", "journey_timers", "campaign_members"):
            conn.execute(f"SELECT * FROM {table} WHERE customer_id IN ({_marks(ids)})", ids)
        journeys, timers, members, decisions = [], [], [], []
        for message_id, customer_id, _type, name, timestamp, payload in rows:
            properties = json.loads(payload).get("properties") or {}
            state = states[customer_id]
            if name != "Product Added" or not state.get("traits", {}).get("email"):
                continue
            journey = "j_" + hashlib.sha256(f"cart:{customer_id}:{message_id}".encode()).hexdigest()
            journey = journey[:18]
            at = _time(timestamp)
            document = {"at": [["", 1, None]], "trigger": {"properties": properties}}
            journeys.append(
                (journey, "cart", "v1", customer_id, "active", 0, timestamp, json.dumps(document))
            )
            due = _stamp(at + timedelta(hours=1))
            timer = json.dumps({"journey": journey, "generation": 0})
            timers.append((due, customer_id, journey, "cart", "resume", timer))
            members.append(("cart", customer_id, timestamp, 0))
            decisions.append((timestamp, "cart", journey, customer_id, "enter", "{}", now))
        conn.executemany(
            "INSERT INTO journeys (id, campaign_id, campaign_version, customer_id, status,"
            " settled, entered_at, state, updated_at) VALUES (?,?,?,?,?,?,?,?,'" + now + "')",
            journeys,
        )
        conn.executemany(
            "INSERT INTO journey_timers (due_at, customer_id, journey_id, campaign_id, kind,"
            " payload) VALUES (?,?,?,?,?,?)",
            timers,
        )
        conn.executemany(
            "INSERT OR REPLACE INTO campaign_members (campaign_id, customer_id, last_entry_at,"
            " in_segment) VALUES (?,?,?,?)",
            members,
        )
        conn.executemany(
            "INSERT INTO decisions (at, campaign_id, journey_id, customer_id, action, fields,"
            " recorded_at) VALUES (?,?,?,?,?,?,?)",
            decisions,
        )
        message_ids = [row[0] for row in rows]
        conn.execute(
            f"DELETE FROM journey_inbox WHERE message_id IN ({_marks(message_ids)})", message_ids
        )
        conn.execute("COMMIT")
        taken += len(rows)


def cart_email(document: dict[str, Any], state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The cart email's decision on a journey's ``document`` (moved on, in place) for a
    customer's ``state``: its subject, and the fields the outbox row keeps."""
    document["at"] = [["", 2, None]]
    traits = state.get("traits", {})
    subject = f"{traits.get('first_name') or 'Hi'}, your cart"
    fields = {
        "template": "cart.html",
        "subject": subject,
        "html": f"<p>Hi {traits.get('first_name', '')}</p>",
        "to": traits.get("email"),
    }
    return subject, fields


def timers_floor(database: Path, now: str) -> int:
    """Decide every timer due by ``now``: an email each; how many timers."""
    conn = _connect(database)
    done = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        timers = conn.execute(
            "SELECT id, customer_id, journey_id, payload FROM journey_timers"
            " WHERE due_at <= ? ORDER BY due_at, id LIMIT ?",
            (now, PAGE),
        ).fetchall()
        if not timers:
            conn.execute("COMMIT")
            return done
        ids = sorted({row[1] for row in timers})
        journey_ids = [row[2] for row in timers]
        states = _documents(conn, "customers", ids)
        documents = _documents(conn, "journeys", journey_ids)
        conn.execute(  # the sends the frequency caps count
            "SELECT customer_id, channel, decided_at FROM outbox"
            f" WHERE customer_id IN ({_marks(ids)})",
            ids,
        ).fetchall()
        updates, sends, decisions = [], [], []
        for _id, customer_id, journey, payload in timers:
            json.loads(payload)
            document = documents[journey]
            subject, fields = cart_email(document, states[customer_id])
            updates.append(("completed", json.dumps(document), journey))
            key = f"{journey}:1"
            sends.append((key, journey, customer_id, json.dumps(fields), now, now, now))
            decisions.append(
                (now, "cart", journey, customer_id, json.dumps({"subject": subject}), now)
            )
        conn.executemany(
            "UPDATE journeys SET status = ?, settled = 1, state = ?, updated_at = '"
            + now
            + "' WHERE id = ?",
            updates,
        )
        timer_ids = [row[0] for row in timers]
        conn.execute(f"DELETE FROM journey_timers WHERE id IN ({_marks(timer_ids)})", timer_ids)
        conn.executemany(
            "INSERT INTO outbox (key, journey_id, step, campaign_id, customer_id, channel,"
            " action, fields, status, attempts, decided_at, next_attempt_at, updated_at)"
            " VALUES (?, ?, '1', 'cart', ?, 'email', 'send', ?, 'pending', 0, ?, ?, ?)",
            sends,
        )
        conn.executemany(
            "INSERT INTO decisions (at, campaign_id, journey_id, customer_id, action, step,"
            " channel, status, fields, recorded_at)"
            " VALUES (?, ?, ?, ?, 'send', '1', 'email', 'sent', ?, ?)",
            decisions,
        )
        conn.execute("COMMIT")
        done += len(timers)
