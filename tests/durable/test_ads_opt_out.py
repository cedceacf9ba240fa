"""An ads opt-out takes the customer out of every audience the project holds them in, also one a
journey keeps after its end (``remove_on_exit: false``), in the durable engine as in simulate:
the journey that keeps it stays loaded for that (tests/journeys: the simulate side)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import sqlalchemy as sa

from engine.campaigns.loader import load_campaigns
from engine.config import ProjectConfig
from engine.durable.project import DurableProject
from engine.ingest.jsonl import read_jsonl
from engine.journeys.plan import plan_text
from engine.journeys.simulate import simulate
from engine.storage.tables import outbox
from tests.durable.harness import (
    Clock,
    decision_lines,
    ingest_file,
    make_project,
    message,
    open_followup,
    plan_lines,
)
from tests.journeys.scenario import RETARGET

T = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def test_an_opt_out_days_after_the_journey_leaves_the_kept_audience(
    database_url: str, tmp_path: Path
) -> None:
    project = make_project(tmp_path, [])
    (project / "campaigns" / "retarget.yaml").write_text(RETARGET)
    shop = [
        message(
            "m1",
            "identify",
            T - timedelta(days=1),
            email="ann@example.com",
            consent={"email": True, "ads": True},
        ),
        message("m2", "Product Added", T, product_id="boots", price=90),
        message("m3", "Order Completed", T + timedelta(hours=1), revenue=90),
    ]
    opt_out = [message("m4", "identify", T + timedelta(days=2), consent={"ads": False})]
    files = []
    for name, lines in (("shop", shop), ("opt-out", opt_out)):
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in lines))
        files.append(path)
    clock = Clock(T + timedelta(hours=2))
    followup = open_followup(project, database_url, clock)
    try:
        durable = DurableProject(followup)
        ingest_file(followup, files[0])
        durable.run_once()  # added, then the order ends the journey: the audience is kept
        clock.now = T + timedelta(days=2, hours=1)
        ingest_file(followup, files[1])
        durable.run_once()
        campaigns = load_campaigns([project / "campaigns"]).require().values()
        parsed = [e for f in files for r in read_jsonl(f) for e in getattr(r, "events", [])]
        expected = plan_lines(plan_text(simulate(campaigns, parsed, ProjectConfig())))
        assert sum(" audience_remove " in line for line in expected) == 1
        assert decision_lines(followup.engine) == expected
        with followup.engine.connect() as conn:
            rows = conn.execute(sa.select(outbox.c.action, outbox.c.status).order_by(outbox.c.id))
            assert [tuple(row) for row in rows] == [
                ("audience_add", "delivered"),
                ("audience_remove", "delivered"),
            ]
    finally:
        followup.close()
