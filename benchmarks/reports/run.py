"""What ``followup report`` costs over a large database, beside a floor.

Workload: N sends (default 1,000,000: three of every four emails, one ad) to N/5 customers across
four campaigns (one with a 10% holdout, one with a split), one journey per customer and campaign,
a conversion for one journey in eight, and N/10 orders (default 100,000; one in four in the
store). The rows are written straight into ``decisions``, ``outbox`` and ``events`` of a fresh
database with followup's schema, then timed, each in the same run on the same database:

- **report**: ``database_report`` (the JSON report under ``last_touch``), as ``followup report``
  runs it;
- **floor**: the row work any report needs, as plain SQL: one GROUP BY over ``decisions``, one
  over the delivered ``outbox`` rows, and reading the orders' payloads.

Usage: ``python -m benchmarks.reports.run [--sends N] [--backends sqlite postgresql]``.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from benchmarks.ingest.databases import BACKENDS, scratch_database
from engine.durable.sql_report import database_report
from engine.reports.journey_counts import ALL_TIME
from engine.reports.settings import ReportSettings
from engine.storage.database import open_database
from engine.storage.tables import decisions, events, outbox

START = datetime(2024, 5, 1, tzinfo=UTC)
CAMPAIGNS = ("abandoned-cart", "welcome-series", "win-back", "post-purchase")
BATCH = 20_000


def _rows(sends: int, seed: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(table, row)`` of the workload, decisions and outbox rows journey by journey."""
    rng = random.Random(seed)
    customers = max(1, sends // 5)
    per_journey = 2
    journeys = sends // per_journey
    for n in range(journeys):
        customer = f"c_{n % customers:014d}"
        campaign = CAMPAIGNS[n % len(CAMPAIGNS)]
        journey = f"j_{n:014d}"
        entered = START + timedelta(minutes=rng.randrange(0, 60 * 24 * 30))
        held = campaign == "abandoned-cart" and rng.random() < 0.1
        variant = rng.choice("ab") if campaign == "welcome-series" else None
        yield (
            "decisions",
            _decision(
                entered,
                campaign,
                journey,
                customer,
                "enter",
                fields={"holdout": True} if held else {},
            ),
        )
        for step in range(per_journey):
            at = entered + timedelta(hours=step * 24)
            channel = "ads" if step == 1 and n % 2 else "email"
            action = "audience_add" if channel == "ads" else "send"
            path = f"{variant}.{step}" if variant else str(step)
            path = f"0.{path}" if variant else path
            fields = {"variant": variant} if variant else {}
            status, reason = ("skipped", "holdout") if held else ("sent", None)
            yield (
                "decisions",
                _decision(
                    at, campaign, journey, customer, action, path, channel, status, reason, fields
                ),
            )
            if not held:
                yield "outbox", {
                    "key": f"{journey}:{path}", "journey_id": journey, "step": path,
                    "campaign_id": campaign, "customer_id": customer, "channel": channel,
                    "action": action, "fields": {}, "status": "delivered", "attempts": 1,
                    "decided_at": at, "next_attempt_at": at,
                    "updated_at": at + timedelta(seconds=rng.randrange(1, 60)),
                }  # fmt: skip
        if rng.random() < 0.125:
            yield (
                "decisions",
                _decision(
                    entered + timedelta(days=2),
                    campaign,
                    journey,
                    customer,
                    "convert",
                    fields={"value": 40.0},
                ),
            )
    for n in range(sends // 10):
        at = START + timedelta(minutes=rng.randrange(0, 60 * 24 * 32))
        yield "events", {
            "message_id": f"o{n}", "type": "track", "name": "Order Completed", "timestamp": at,
            "customer_id": f"c_{rng.randrange(customers):014d}", "user_id": None,
            "anonymous_id": None, "channel": "pos" if n % 4 == 0 else "web",
            "payload": {"properties": {"revenue": 40.0 + n % 7}}, "source": "bench",
            "received_at": at,
        }  # fmt: skip


def _decision(
    at: datetime,
    campaign: str,
    journey: str,
    customer: str,
    action: str,
    step: str | None = None,
    channel: str | None = None,
    status: str | None = None,
    reason: str | None = None,
    fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "at": at, "campaign_id": campaign, "journey_id": journey, "customer_id": customer,
        "action": action, "step": step, "channel": channel, "status": status, "reason": reason,
        "fields": fields or {}, "recorded_at": at,
    }  # fmt: skip


def _fill(db: sa.Engine, sends: int, seed: int) -> dict[str, int]:
    tables = {"decisions": decisions, "outbox": outbox, "events": events}
    pending: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
    written = dict.fromkeys(tables, 0)
    with db.begin() as conn:
        for name, row in _rows(sends, seed):
            pending[name].append(row)
            if len(pending[name]) >= BATCH:
                conn.execute(tables[name].insert(), pending[name])
                written[name] += len(pending[name])
                pending[name] = []
        for name, rows in pending.items():
            if rows:
                conn.execute(tables[name].insert(), rows)
                written[name] += len(rows)
    with db.connect() as conn:
        if db.dialect.name == "postgresql":
            conn.execute(sa.text("ANALYZE"))
        else:
            conn.execute(sa.text("ANALYZE"))
    return written


def _floor(conn: sa.Connection) -> None:
    d, o, e = decisions.c, outbox.c, events.c
    conn.execute(
        sa.select(d.campaign_id, d.action, d.step, d.status, d.reason, sa.func.count()).group_by(
            d.campaign_id, d.action, d.step, d.status, d.reason
        )
    ).all()
    conn.execute(
        sa.select(o.campaign_id, o.channel, sa.func.count())
        .where(o.status == "delivered")
        .group_by(o.campaign_id, o.channel)
    ).all()
    for _row in conn.execute(
        sa.select(e.customer_id, e.timestamp, e.payload).where(e.name == "Order Completed")
    ):
        pass


def _timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(backend: str, sends: int, seed: int) -> dict[str, Any]:
    """Fill a scratch database of ``backend`` and time the report beside the floor."""
    with scratch_database(backend) as url:
        db = open_database(url)
        try:
            filled = _timed(lambda: _fill(db, sends, seed))
            settings = ReportSettings()
            with db.connect() as conn:
                floor = _timed(lambda: _floor(conn))
                report = _timed(lambda: database_report(conn, {}, settings, ALL_TIME))
                floor_again = _timed(lambda: _floor(conn))
        finally:
            db.dispose()
    best_floor = min(floor, floor_again)
    return {"backend": backend, "fill": filled, "report": report, "floor": best_floor,
            "ratio": report / best_floor}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sends", type=int, default=1_000_000)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(f"workload: {args.sends:,} sends, {args.sends // 10:,} orders, "
          f"{max(1, args.sends // 5):,} customers")  # fmt: skip
    print("| backend | report | floor | ratio | (filling the database) |")
    print("|---|--:|--:|--:|--:|")
    for backend in args.backends:
        found = measure(backend, args.sends, args.seed)
        print(
            f"| {backend} | {found['report']:.1f} s | {found['floor']:.1f} s | "
            f"{found['ratio']:.1f}x | {found['fill']:.0f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
