"""The floors of the engine's two durable phases on PostgreSQL: :mod:`engine_floor`'s row work
by plain ``psycopg``.

The same reads and writes as the SQLite floors, on a copy of the database taken just before each
phase: pages of 500 customers, each one transaction (PostgreSQL's default durability, as
followup runs), ``= ANY`` lists, ``executemany`` (psycopg sends it in pipeline mode), one JSON
encode per document written; psycopg decodes the ``json`` columns it reads, once each.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

import psycopg

from benchmarks.campaigns.engine_floor import cart_email

PAGE = 500  # customers per transaction, as followup's batch_size
# Lookups by a list of ids are not prepared on the server: a generic plan made while a table was
# small kept scanning it whole as it grew (4 s a lookup over the events phase, 20,000 customers).
# The inserts are (psycopg prepares a statement run five times).
LOOKUP_PREPARE = False


def _connect(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()
    return conn


def _documents(conn: psycopg.Connection[Any], table: str, ids: list[str]) -> dict[str, Any]:
    """The ``state`` column of ``table``'s rows ``ids``, decoded, by id."""
    rows = conn.execute(
        f"SELECT id, state FROM {table} WHERE id = ANY(%s)", (ids,), prepare=LOOKUP_PREPARE
    )
    return dict(rows.fetchall())


def events_floor_pg(url: str, now: datetime) -> int:
    """Take every inbox event due by ``now`` into journeys and timers; how many events."""
    taken = 0
    with _connect(url) as conn:
        while True:
            with conn.transaction():
                # the page by the inbox's index, then its events by key: joined in one query,
                # PostgreSQL sorted the whole inbox on a fresh copy's statistics
                page = conn.execute(
                    "SELECT message_id FROM journey_inbox WHERE timestamp <= %s"
                    " ORDER BY timestamp, seq LIMIT %s",
                    (now, 2 * PAGE),
                ).fetchall()
                if not page:
                    return taken
                order = {row[0]: n for n, row in enumerate(page)}
                rows = conn.execute(
                    "SELECT message_id, customer_id, type, name, timestamp, payload FROM events"
                    " WHERE message_id = ANY(%s)",
                    (list(order),),
                ).fetchall()
                rows.sort(key=lambda row: order[row[0]])
                ids = sorted({row[1] for row in rows})
                states = _documents(conn, "customers", ids)
                for table in ("journeys", "journey_timers", "campaign_members"):
                    conn.execute(
                        f"SELECT * FROM {table} WHERE customer_id = ANY(%s)",
                        (ids,),
                        prepare=LOOKUP_PREPARE,
                    ).fetchall()
                journeys, timers, members, decisions = [], [], [], []
                for message_id, customer_id, _type, name, at, payload in rows:
                    properties = payload.get("properties") or {}
                    state = states[customer_id]
                    if name != "Product Added" or not state.get("traits", {}).get("email"):
                        continue
                    digest = hashlib.sha256(f"cart:{customer_id}:{message_id}".encode())
                    journey = ("j_" + digest.hexdigest())[:18]
                    document = {"at": [["", 1, None]], "trigger": {"properties": properties}}
                    journeys.append(
                        (
                            journey,
                            "cart",
                            "v1",
                            customer_id,
                            "active",
                            False,
                            at,
                            json.dumps(document),
                            now,
                        )
                    )
                    timer = json.dumps({"journey": journey, "generation": 0})
                    due = at + timedelta(hours=1)
                    timers.append((due, customer_id, journey, "cart", "resume", timer))
                    members.append(("cart", customer_id, at, False))
                    decisions.append((at, "cart", journey, customer_id, "enter", "{}", now))
                cursor = conn.cursor()
                cursor.executemany(
                    "INSERT INTO journeys (id, campaign_id, campaign_version, customer_id,"
                    " status, settled, entered_at, state, updated_at)"
                    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    journeys,
                )
                cursor.executemany(
                    "INSERT INTO journey_timers (due_at, customer_id, journey_id, campaign_id,"
                    " kind, payload) VALUES (%s,%s,%s,%s,%s,%s)",
                    timers,
                )
                cursor.executemany(
                    "INSERT INTO campaign_members (campaign_id, customer_id, last_entry_at,"
                    " in_segment) VALUES (%s,%s,%s,%s) ON CONFLICT (campaign_id, customer_id)"
                    " DO UPDATE SET last_entry_at = EXCLUDED.last_entry_at,"
                    " in_segment = EXCLUDED.in_segment",
                    members,
                )
                cursor.executemany(
                    "INSERT INTO decisions (at, campaign_id, journey_id, customer_id, action,"
                    " fields, recorded_at) VALUES (%s,%s,%s,%s,%s,%s,%s)",
                    decisions,
                )
                conn.execute(
                    "DELETE FROM journey_inbox WHERE message_id = ANY(%s)",
                    ([row[0] for row in rows],),
                )
            taken += len(rows)


def timers_floor_pg(url: str, now: datetime) -> int:
    """Decide every timer due by ``now``: an email each; how many timers."""
    done = 0
    with _connect(url) as conn:
        while True:
            with conn.transaction():
                timers = conn.execute(
                    "SELECT id, customer_id, journey_id, payload FROM journey_timers"
                    " WHERE due_at <= %s ORDER BY due_at, id LIMIT %s",
                    (now, PAGE),
                ).fetchall()
                if not timers:
                    return done
                ids = sorted({row[1] for row in timers})
                states = _documents(conn, "customers", ids)
                documents = _documents(conn, "journeys", [row[2] for row in timers])
                conn.execute(  # the sends the frequency caps count
                    "SELECT customer_id, channel, decided_at FROM outbox"
                    " WHERE customer_id = ANY(%s)",
                    (ids,),
                    prepare=LOOKUP_PREPARE,
                ).fetchall()
                updates, sends, decisions = [], [], []
                for _id, customer_id, journey, _payload in timers:
                    document = documents[journey]
                    subject, fields = cart_email(document, states[customer_id])
                    updates.append(("completed", json.dumps(document), now, journey))
                    key = f"{journey}:1"
                    sends.append((key, journey, customer_id, json.dumps(fields), now, now, now))
                    decisions.append(
                        (now, "cart", journey, customer_id, json.dumps({"subject": subject}), now)
                    )
                cursor = conn.cursor()
                cursor.executemany(
                    "UPDATE journeys SET status = %s, settled = true, state = %s,"
                    " updated_at = %s WHERE id = %s",
                    updates,
                )
                conn.execute(
                    "DELETE FROM journey_timers WHERE id = ANY(%s)", ([row[0] for row in timers],)
                )
                cursor.executemany(
                    "INSERT INTO outbox (key, journey_id, step, campaign_id, customer_id,"
                    " channel, action, fields, status, attempts, decided_at, next_attempt_at,"
                    " updated_at) VALUES (%s, %s, '1', 'cart', %s, 'email', 'send', %s,"
                    " 'pending', 0, %s, %s, %s)",
                    sends,
                )
                cursor.executemany(
                    "INSERT INTO decisions (at, campaign_id, journey_id, customer_id, action,"
                    " step, channel, status, fields, recorded_at)"
                    " VALUES (%s, %s, %s, %s, 'send', '1', 'email', 'sent', %s, %s)",
                    decisions,
                )
            done += len(timers)
