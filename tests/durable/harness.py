"""A project on disk with the example campaigns, its database, and a clock the test moves."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from engine.events import Event
from engine.ingest.jsonl import read_jsonl
from engine.journeys.plan import format_time, plan_text
from engine.journeys.simulate import simulate
from engine.storage.tables import (
    decisions,
    journey_timers,
    outbox,
    schedule_ticks,
    segment_looks,
)

ROOT = Path(__file__).resolve().parents[2]
STORIES = ROOT / "docs" / "examples" / "stories"


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_project(folder: Path, campaigns: list[str] | None = None) -> Path:
    """``folder`` with the example templates and (some of) the example campaigns."""
    shutil.copytree(ROOT / "templates", folder / "templates")
    (folder / "campaigns").mkdir()
    for file in sorted((ROOT / "campaigns").glob("*.yaml")):
        if campaigns is None or file.stem in campaigns:
            shutil.copy(file, folder / "campaigns" / file.name)
    return folder


# a signup's welcome, sent at once (templates: hello.html)
HELLO_CAMPAIGN = """campaign: hello
trigger: {event: Subscribed}
steps:
  - send: email
    template: hello.html
    subject: Hello
"""


def one_campaign_project(folder: Path, campaign: str, templates: dict[str, str]) -> Path:
    """``folder`` with one campaign file (YAML text) and the given templates, by file name."""
    (folder / "campaigns").mkdir()
    (folder / "templates").mkdir()
    (folder / "campaigns" / "campaign.yaml").write_text(campaign)
    for name, text in templates.items():
        (folder / "templates" / name).write_text(text)
    return folder


def write_messages(path: Path, messages: list[dict[str, Any]]) -> Path:
    """``messages`` as a JSONL file at ``path``."""
    path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    return path


def open_followup(folder: Path, database_url: str, clock: Clock) -> Followup:
    """The engine of the project in ``folder`` on ``database_url``."""
    return Followup(Project(ProjectConfig(database_url=database_url), folder), clock)


def message(message_id: str, kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
    """Ann's message: an ``identify`` with ``fields`` as traits, else a ``track`` of ``kind``
    with them as properties."""
    found: dict[str, Any] = {"userId": "ann", "messageId": message_id, "timestamp": at.isoformat()}
    if kind == "identify":
        found.update(type="identify", traits=fields)
    else:
        found.update(type="track", event=kind, properties=fields)
    return found


def shopper(followup: Followup, user: str, at: datetime) -> None:
    """``user`` identified (email, email and ads consent) 5 minutes before adding a product of
    30 to the cart at ``at``: an abandoned cart."""
    followup.identify(
        user_id=user,
        traits={"email": f"{user}@example.com", "consent": {"email": True, "ads": True}},
        timestamp=at - timedelta(minutes=5),
    )
    followup.track(
        "Product Added", user_id=user, properties={"product_id": "p", "price": 30}, timestamp=at
    )


def accepted_events(path: Path) -> list[Event]:
    """The events of a JSONL file that parse, in file order (rejected lines left out)."""
    return [e for record in read_jsonl(path) for e in getattr(record, "events", [])]


def simulated_plan(
    project: Path,
    events: Path,
    config: ProjectConfig | None = None,
    until: datetime | None = None,
) -> list[str]:
    """``simulate``'s plan, as :func:`plan_lines`, of the project's campaigns over the events of
    ``events`` that parse, to ``until`` (default: a week after the last)."""
    campaigns = load_campaigns([project / "campaigns"]).require().values()
    planned = simulate(campaigns, accepted_events(events), config or ProjectConfig(), until)
    return plan_lines(plan_text(planned))


def ingest_file(followup: Followup, events: Path) -> list[datetime]:
    """Ingest a JSONL file; the times of its events, sorted."""
    records = list(read_jsonl(events))
    followup.ingestor.ingest(records)
    return sorted(e.timestamp for r in records for e in getattr(r, "events", []))


def replay(durable: DurableProject, clock: Clock, start: datetime, end: datetime) -> None:
    """Run a pass every hour of the clock from ``start`` to ``end``, as cron would."""
    clock.now = start
    while clock.now <= end:
        durable.run_once()
        clock.now += timedelta(hours=1)


def shop_decisions(shop: Path) -> list[str]:
    """:func:`decision_lines` of the SQLite file ``followup.db`` in the folder ``shop``."""
    db = sa.create_engine(f"sqlite:///{shop / 'followup.db'}")
    try:
        return decision_lines(db)
    finally:
        db.dispose()


def decision_lines(db: sa.Engine) -> list[str]:
    """The decisions log as plan-like lines, in plan order (refused entries left out)."""
    query = sa.select(decisions).where(decisions.c.action != "not_entered")
    with db.connect() as conn:
        rows = sorted(conn.execute(query), key=lambda r: (r.at, r.journey_id, r.id))
    return [
        " ".join(
            str(value)
            for value in (
                format_time(r.at),
                r.campaign_id,
                r.journey_id,
                r.step,
                r.channel,
                r.action,
                r.status,
                r.reason,
            )
        )
        for r in rows
    ]


def plan_lines(plan_text: str) -> list[str]:
    """``followup simulate`` output in the form of :func:`decision_lines`."""
    lines = []
    for text in plan_text.splitlines():
        d = orjson.loads(text)
        lines.append(
            " ".join(
                str(d.get(key))
                for key in (
                    "at",
                    "campaign",
                    "journey",
                    "step",
                    "channel",
                    "action",
                    "status",
                    "reason",
                )
            )
        )
    return lines


def outbox_rows(db: sa.Engine) -> list[tuple[str, str]]:
    """``(key, status)`` of every outbox row, by key."""
    with db.connect() as conn:
        return sorted((r.key, r.status) for r in conn.execute(sa.select(outbox)))


def replay_when_due(durable: DurableProject, clock: Clock, events: Path, end: datetime) -> int:
    """Ingest each event of ``events`` once the clock reaches it, as it would arrive, and run
    a pass on the hourly grid from the first event (as :func:`replay` does), but only at the
    hours when something is due: an event, a timer, a segment look or a schedule tick.
    Returns how many passes ran."""
    followup = durable.followup
    records = sorted(
        (r for r in read_jsonl(events) if getattr(r, "events", None)),
        key=lambda r: r.events[0].timestamp,
    )
    times = [r.events[0].timestamp for r in records]
    start, passes, taken = times[0], 0, 0
    clock.now = start
    while clock.now <= end:
        arrived = sum(1 for t in times if t <= clock.now)
        followup.ingestor.ingest(records[taken:arrived])
        taken = arrived
        durable.run_once()
        passes += 1
        with followup.engine.connect() as conn:
            kept = [
                conn.scalar(sa.select(sa.func.min(journey_timers.c.due_at))),
                conn.scalar(sa.select(sa.func.min(segment_looks.c.due_at))),
                conn.scalar(  # a schedule's tick; the segment sweeps wait for a look
                    sa.select(sa.func.min(schedule_ticks.c.due_at)).where(
                        schedule_ticks.c.name.not_like("segments%")
                    )
                ),
                times[taken] if taken < len(times) else None,
            ]
        due = min((t for t in kept if t is not None), default=end + timedelta(hours=1))
        following = max(due, clock.now + timedelta(hours=1))
        clock.now = start - ((start - following) // timedelta(hours=1)) * timedelta(hours=1)
    return passes


def killed_then_resumed(
    followup: Followup,
    clock: Clock,
    arrivals: tuple[Sequence[Any], Sequence[Any], Sequence[Any]],
    at: datetime,
    end: datetime,
    after_kill: Callable[[], None] = lambda: None,
) -> None:
    """One customer a batch: the first ``arrivals`` ingested and a pass at the clock's time;
    the second ingested and a pass at ``at``, killed once it has committed its first batch with
    events (``after_kill`` looks then); the third ingested and a pass at ``end`` goes on."""

    def kill(point: str) -> None:
        if point == "events_committed":
            raise RuntimeError("killed")

    first, second, third = arrivals
    followup.ingestor.ingest(first)
    DurableProject(followup).run_once()
    followup.ingestor.ingest(second)
    clock.now = at
    dying = DurableProject(followup, crash=kill)
    dying.runtime.batch_size = 1
    with pytest.raises(RuntimeError, match="killed"):
        dying.run_once()
    after_kill()
    followup.ingestor.ingest(third)
    clock.now = end
    resumed = DurableProject(followup)
    resumed.runtime.batch_size = 1
    resumed.run_once()


def ingest_arrived(
    followup: Followup,
    records: Sequence[Any],
    taken: int,
    now: datetime,
    early: Mapping[str, timedelta] | None = None,
) -> int:
    """Ingest the ``records`` (in order of arrival) after the first ``taken`` that have arrived
    by ``now``: at their time, or ``early`` by message id (stamped ahead of the clock); how many
    are taken then."""
    early = early or {}

    def arrives(record: Any) -> datetime:
        event = record.events[0]
        return event.timestamp - early.get(event.message_id, timedelta(0))

    arrived = taken
    while arrived < len(records) and arrives(records[arrived]) <= now:
        arrived += 1
    followup.ingestor.ingest(records[taken:arrived])
    return arrived
