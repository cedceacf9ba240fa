"""Schedule ticks acted on for a profile away from the run's place, and marked so.

A schedule's run goes over the profiles the engine knows apart in id order, each partition its
own, keeping how far it got (``schedule_ticks``). A batch may take a profile's work before the
run comes to it: a profile merged at ingest, whose survivor's work the batch takes (the events
received as the profile go with it), or a survivor in another partition whose work a run takes
for a profile merged into it; or a pass's event, timer or looks batch after its run stopped
at a customer another pass holds and waited past its grace. Taken first, that work would show
the tick the profile as it stood after the tick's instant, or the run would pass a profile
merged meanwhile by. So such a batch acts on the tick for the profile first (the tick its
partition's run is on, or would run), and marks it (``tick_marks``); the run passes a marked
profile over. ``simulate`` has one clock: there, every profile is at the tick as it stood at its
instant. The look at everyone that new or changed segment campaigns need is such a run too, at
the time it began.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

from engine.campaigns.schema import Campaign, ScheduleTrigger
from engine.drive.partitions import Partition, bucket_of, split_row_name
from engine.drive.stored_schedules import SCHEDULE_PREFIX, full_sweep_name, tick_to_run
from engine.durable.book import CampaignBook
from engine.storage.customer_store import among
from engine.storage.tables import schedule_ticks, tick_marks


class Tick(NamedTuple):
    """A run's act for one profile: when, the schedule row's name (without its partition), the
    campaign whose tick it is (``None``: the look at everyone of the segment campaigns), the
    profile."""

    at: datetime
    name: str
    campaign: Campaign | None
    profile: str


def ticks_due(
    conn: sa.Connection,
    book: CampaignBook,
    count: int,
    zone: str,
    profiles: Iterable[str],
    now: datetime,
    acting: Collection[str] = (),
    gone_over: Collection[str] = (),
) -> list[Tick]:
    """The ticks due by ``now`` that the runs of ``profiles``' own partitions (of ``count``, or
    of the count that keeps a schedule's rows while passes split in ``count`` leave it) have
    yet to act on for them: the tick a run under way is on, if it has not come to the
    profile, or the one a run not started would run; and the look at everyone the segment
    campaigns need, at the time it began, if its run has not come to the profile; less those
    marked, and less the ticks of the runs ``acting`` for the profiles ``gone_over`` (a run's
    batch: the runs act on them with it). In the order the engine takes them (time, then the
    runs' order, then the profile)."""
    runs: list[tuple[str, Campaign | None]] = [
        (SCHEDULE_PREFIX + c.id, c) for c in book.active if isinstance(c.trigger, ScheduleTrigger)
    ]
    if (full := full_sweep_name(book)) is not None:
        runs.append((full, None))  # after the ticks of its instant
    profiles = list(profiles)
    own = frozenset(gone_over)
    if own and own.issuperset(profiles):  # the runs acting have them in hand
        runs = [(name, campaign) for name, campaign in runs if name not in acting]
    if not runs:
        return []
    groups = {count: _partitions(profiles, count)}
    rows = _rows(conn, [name for name, _c in runs], groups[count])
    found: list[Tick] = []
    for name, campaign in runs:
        # the schedule's rows are of one count of partitions: the pass's, or the old count's
        # while its partitions are in the middle of a tick (the pass's count leaves it to them)
        kept = next((c for c in rows if name in rows[c]), count)
        if kept not in groups:
            groups[kept] = _partitions(profiles, kept)
        for partition, group in groups[kept].items():
            row = rows.get(kept, {}).get(name, {}).get(partition)
            if row is None:  # the partition has not run the schedule: from its next tick
                continue
            place = row.after_customer  # under way: at its tick, for those it has to come to
            if place is not None or campaign is None:  # (the look at everyone: its time)
                at = row.due_at
            else:
                assert isinstance(campaign.trigger, ScheduleTrigger)
                at = tick_to_run(campaign.trigger, row.due_at, now, zone)
            if at <= now:
                left = own if name in acting else frozenset()
                found.extend(
                    Tick(at, name, campaign, p)
                    for p in group
                    if (place is None or p > place) and p not in left
                )
    if found:  # less those a batch acted on already
        marks = _marks(conn, list({t.name for t in found}), {t.profile for t in found})
        found = [t for t in found if marks.get((t.name, t.profile)) != t.at]
    order = {name: i for i, (name, _c) in enumerate(runs)}
    return sorted(found, key=lambda tick: (tick.at, order[tick.name], tick.profile))


def _partitions(profiles: Iterable[str], count: int) -> dict[Partition, list[str]]:
    """``profiles`` by their partition of ``count``."""
    groups: dict[Partition, list[str]] = {}
    for profile in profiles:
        groups.setdefault(Partition.of(profile, count), []).append(profile)
    return groups


def _rows(
    conn: sa.Connection, names: Sequence[str], partitions: Iterable[Partition]
) -> dict[int, dict[str, dict[Partition, Any]]]:
    """The rows of the schedules ``names`` that hold ``partitions``' runs, by count, schedule
    and partition (read by name); for a schedule with none of them, every row of it there is,
    of whatever count (read by its name's prefix: a count of partitions that passes have left
    in the middle of a tick, see :meth:`SqlJourneyStore.record_schedule`)."""
    found: dict[int, dict[str, dict[Partition, Any]]] = {}

    def keep(row: Any) -> None:
        name, partition = split_row_name(row.name)
        found.setdefault(partition.count, {}).setdefault(name, {})[partition] = row

    wanted = {p.row_name(name) for p in partitions for name in names}
    for where in among(conn, schedule_ticks.c.name, wanted):
        for row in conn.execute(sa.select(schedule_ticks).where(where)):
            keep(row)
    for name in names:
        if not any(name in by_name for by_name in found.values()):
            for row in schedule_rows(conn, name):
                keep(row)
    return found


def schedule_rows(conn: sa.Connection, name: str, lock: bool = False) -> list[Any]:
    """Every row of the schedule ``name``, of whatever count of partitions (locked, with
    ``lock``)."""
    query = sa.select(schedule_ticks).where(schedule_ticks.c.name.startswith(name, autoescape=True))
    if lock:
        query = query.with_for_update()
    return [row for row in conn.execute(query) if split_row_name(row.name)[0] == name]


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
    rows = {(tick.name, tick.profile): tick.at for tick in ticks if tick.profile not in gone}
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
