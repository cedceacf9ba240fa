"""Schedule ticks acted on for a profile away from the run's place, and marked so.

A schedule's run goes over the profiles the engine knows apart in id order, each partition its
own, keeping how far it got (``schedule_ticks``). A batch may take a profile's work before the
run comes to it: a profile merged at ingest, whose survivor's work the batch takes (the events
received as the profile go with it), or a survivor in another partition whose work a run takes
for a profile merged into it. Taken first, that work would show the tick the profile as it
stood after the tick's instant, or the run would pass a profile merged meanwhile by. So such a
batch acts on the tick for the profile first (the tick its partition's run is on, or would run),
and marks it (``tick_marks``); the run passes a marked profile over. ``simulate`` has one clock:
there, every profile is at the tick as it stood at its instant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa

from engine.campaigns.schema import Campaign, ScheduleTrigger
from engine.drive.partitions import Partition, bucket_of
from engine.drive.stored_schedules import SCHEDULE_PREFIX, tick_to_run
from engine.durable.book import CampaignBook
from engine.storage.customer_store import among
from engine.storage.tables import schedule_ticks, tick_marks

# a tick for a profile: when, the campaign, the profile
Tick = tuple[datetime, Campaign, str]


def ticks_due(
    conn: sa.Connection,
    book: CampaignBook,
    count: int,
    zone: str,
    profiles: Iterable[str],
    now: datetime,
) -> list[Tick]:
    """The ticks due by ``now`` that the runs of ``profiles``' own partitions (of ``count``)
    have yet to act on for them: the tick a run under way is on, if it has not come to the
    profile, or the one a run not started would run; less those marked. In the order the
    engine takes them (time, then the campaigns in the runs' order, then the profile)."""
    scheduled = [c for c in book.active if isinstance(c.trigger, ScheduleTrigger)]
    theirs = {profile: Partition.of(profile, count) for profile in profiles}
    if not scheduled or not theirs:
        return []
    names = {p.row_name(SCHEDULE_PREFIX + c.id) for p in theirs.values() for c in scheduled}
    rows = {
        row.name: row
        for where in among(conn, schedule_ticks.c.name, names)
        for row in conn.execute(sa.select(schedule_ticks).where(where))
    }
    found: list[Tick] = []
    for profile, partition in theirs.items():
        for campaign in scheduled:
            name = SCHEDULE_PREFIX + campaign.id
            row = rows.get(partition.row_name(name))
            if row is None:  # the partition has not run the schedule: from its next tick
                continue
            if row.after_customer is not None:  # under way: at its tick, if not past it
                if row.after_customer >= profile:
                    continue
                at = row.due_at
            else:
                assert isinstance(campaign.trigger, ScheduleTrigger)
                at = tick_to_run(campaign.trigger, row.due_at, now, zone)
            if at <= now:
                found.append((at, campaign, profile))
    if found:  # less those a batch acted on already
        marks = _marks(conn, list({SCHEDULE_PREFIX + c.id for _at, c, _p in found}), theirs)
        found = [t for t in found if marks.get((SCHEDULE_PREFIX + t[1].id, t[2])) != t[0]]
    order = {campaign.id: i for i, campaign in enumerate(scheduled)}
    return sorted(found, key=lambda tick: (tick[0], order[tick[1].id], tick[2]))


def marked(
    conn: sa.Connection, due: Mapping[str, datetime], profiles: Sequence[str]
) -> dict[str, set[str]]:
    """Of ``profiles``, those whose tick of each schedule of ``due`` (name -> due time) is
    marked, by schedule."""
    found: dict[str, set[str]] = {}
    of_these = [
        sa.and_(tick_marks.c.name == name, tick_marks.c.due_at == at) for name, at in due.items()
    ]
    # as a run mostly finds: none (a partition's marks go when its run is done)
    if (
        not of_these
        or conn.scalar(sa.select(tick_marks.c.name).where(sa.or_(*of_these)).limit(1)) is None
    ):
        return found
    for (name, profile), at in _marks(conn, list(due), profiles).items():
        if due[name] == at:
            found.setdefault(name, set()).add(profile)
    return found


def mark(conn: sa.Connection, ticks: Sequence[Tick], merged: Iterable[str] = ()) -> None:
    """Mark ``ticks`` acted on (a profile's later mark of a schedule replaces its earlier), and
    drop the marks of the profiles ``merged`` (the engine took their merge: no run lists them
    again)."""
    gone = set(merged)
    for where in among(conn, tick_marks.c.customer_id, gone):
        conn.execute(tick_marks.delete().where(where))
    rows = {
        (SCHEDULE_PREFIX + campaign.id, profile): at
        for at, campaign, profile in ticks
        if profile not in gone
    }
    for name in {name for name, _profile in rows}:
        profiles = [profile for n, profile in rows if n == name]
        for where in among(conn, tick_marks.c.customer_id, profiles):
            conn.execute(tick_marks.delete().where(tick_marks.c.name == name, where))
    if rows:
        conn.execute(
            tick_marks.insert(),
            [
                {"name": n, "customer_id": p, "due_at": at, "bucket": bucket_of(p)}
                for (n, p), at in rows.items()
            ],
        )


def forget(conn: sa.Connection, name: str, partition: Partition, before: datetime) -> None:
    """Drop the marks of the schedule ``name`` before ``before`` of ``partition``'s profiles:
    its run has gone over them all."""
    conn.execute(
        tick_marks.delete().where(
            tick_marks.c.name == name,
            tick_marks.c.due_at < before,
            tick_marks.c.bucket >= partition.lo,
            tick_marks.c.bucket < partition.hi,
        )
    )


def _marks(
    conn: sa.Connection, names: Sequence[str], profiles: Iterable[str]
) -> dict[tuple[str, str], datetime]:
    """The marks of ``names`` for ``profiles``: (schedule, profile) -> the tick marked."""
    found: dict[tuple[str, str], datetime] = {}
    for where in among(conn, tick_marks.c.customer_id, profiles):
        query = sa.select(tick_marks).where(where, tick_marks.c.name.in_(list(names)))
        for row in conn.execute(query):
            found[(row.name, row.customer_id)] = row.due_at
    return found
