"""Schedule ticks and segment sweeps in durable passes, from a store's schedule rows.

``simulate``'s clock never misses a tick (:mod:`engine.journeys.virtual_clock`); passes on a wall
clock can: a cron that did not run, a machine that was down. Here each scheduled campaign and
the segment sweep has a row in the store saying when it is next due and how far a run over the
customers got, so a crash resumes and several workers share a run. Missed ticks follow
APScheduler's model (``misfire_grace``, coalescing); segment looks are booked per customer and
swept at each hour of UTC, each missed hour at that hour, as ``simulate`` does.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from engine.campaigns.durations import format_duration
from engine.campaigns.schema import Campaign, ScheduleTrigger, SegmentTrigger
from engine.drive.driver import Act as DriverAct
from engine.drive.driver import Driver, TickSummary
from engine.drive.port import ScheduleRow, ScheduleStore
from engine.durable.book import CampaignBook
from engine.journeys.plan import format_time
from engine.journeys.runtime import JourneyEngine
from engine.journeys.schedule import SEGMENT_SWEEP, first_sweep_from, next_tick

SEGMENTS = "segments"  # the hourly sweep of the customers whose segment look is due
SCHEDULE_PREFIX = "schedule:"  # + a campaign id: the row of its schedule ticks
NEVER = datetime(9999, 1, 1, tzinfo=UTC)
BEGUN = ""  # the place of a run begun before its first customer (every id sorts after it)
MAX_COUNTED_TICKS = 10_000  # a missed every-minute schedule is counted this far, no further
_MICROSECOND = timedelta(microseconds=1)
# how long after it began a sweep over everyone stopped at a customer another pass holds ends
# the pass, as a tick within its misfire_grace (the other work would take the customers it has
# still to look at past its time); later, the pass goes on
FULL_SWEEP_WAITS = timedelta(hours=1)

# what a run over the customers does, at its due time, to those of a batch still live
Act = Callable[[JourneyEngine, datetime, Sequence[str]], None]

log = logging.getLogger("followup.durable")


class StoredSchedules:
    """The ticks of the active scheduled campaigns and the segment sweeps, from ``store``."""

    def __init__(
        self, store: ScheduleStore, driver: Driver, book: CampaignBook, default_timezone: str
    ) -> None:
        self.store = store
        self.driver = driver
        self.book = book
        self.zone = default_timezone
        self.full_sweep = full_sweep_name(book)
        # the full sweeps of other segment campaign versions; with none active, every one of
        # them: events taken meanwhile book no looks, so the same campaigns back sweep everyone
        store.forget_schedules(f"{SEGMENTS}:", self.full_sweep)

    def run(self, now: datetime, summary: TickSummary) -> None:
        """The ticks due by ``now``, then the segment sweeps. A tick that stops at a customer
        another pass holds (ingest, for a batch) ends the pass here (``summary.tick_left``):
        the sweeps and the other events and timers would take the customers it has still to
        go over past its instant; the next pass goes on with it. Past the tick's
        ``misfire_grace`` the pass goes on all the same (logged). The first segment sweep
        (the first hour of UTC from the first pass) is kept before anything else it does: a first pass
        killed in the middle of the first sweep over everyone leaves it to the next."""
        if self.full_sweep is not None:
            self.store.record_schedule(SEGMENTS, first_sweep_from(now), exact=False)
        runs = [  # in id order: the order of the ticks of an instant
            self._schedule(campaign, campaign.trigger, summary, now)
            for campaign in self.book.active
            if isinstance(campaign.trigger, ScheduleTrigger)
        ]
        if self.full_sweep is not None:  # after the ticks of its instant, as in simulate
            runs.append(self._look_at_everyone(self.full_sweep, now))
        gone_over = self._every_customer(runs, now, summary)
        summary.swept_customers += gone_over.pop(self.full_sweep or "", 0)
        summary.scheduled_customers += sum(gone_over.values())
        if summary.tick_left:
            log.info("a tick stopped at a customer another pass holds: goes on next pass")
            return
        self._segments(summary, now)

    def _schedule(
        self, campaign: Campaign, trigger: ScheduleTrigger, summary: TickSummary, now: datetime
    ) -> Run:
        name = SCHEDULE_PREFIX + campaign.id
        zone = self.zone
        self._coalesce(name, trigger, summary, now)

        def following(due: datetime) -> datetime:
            """The next tick after now: those that came due while the tick of ``due`` ran (a
            long run, a crashed one resumed late) coalesce into it, counted as skipped."""
            after = next_tick(trigger, max(due, now), zone)
            if (missed := next_tick(trigger, due, zone)) < after:
                ran = f"came due while the tick of {format_time(due)} ran"
                self._skipped(name, trigger, summary, (missed, after, now), ran)
            return after

        return Run(
            name,
            next_tick(trigger, now, zone),  # first seen: the next tick, not one now
            lambda engine, due, ids: engine.enter_scheduled(campaign, due, ids),
            following,
            waits_within=trigger.misfire_grace,
        )

    def _coalesce(
        self, name: str, trigger: ScheduleTrigger, summary: TickSummary, now: datetime
    ) -> None:
        """After passes stopped (downtime, a cron that did not run), APScheduler's model: the
        ticks missed by more than ``misfire_grace`` are skipped, the rest coalesce into the
        latest, so a weekly newsletter 11 weeks behind sends at most this week's issue, never
        the oldest one 11 weeks late (and an hourly one two ticks behind within the grace
        sends the latest). A tick already under way (a crash mid-run) goes on."""
        zone = self.zone
        with self.store.schedule(name) as row:
            if row is None or row.under_way or row.due_at > now:
                return
            missed_from = row.due_at
            due = tick_to_run(trigger, missed_from, now, zone)
            if due == missed_from:
                return
            row.move(due)
        self._skipped(name, trigger, summary, (missed_from, due, now), "missed")

    def _skipped(
        self,
        name: str,
        trigger: ScheduleTrigger,
        summary: TickSummary,
        span: tuple[datetime, datetime, datetime],
        how: str,
    ) -> None:
        """Count and log as skipped the ticks of ``name`` in ``[first, until)`` of ``span``
        (``first``, ``until``, ``now``): coalesced into the latest within ``misfire_grace``,
        or missed by more; ``until`` is the tick to run, or the next one to come."""
        first, until, now = span
        skipped = _ticks_between(trigger, first, until, self.zone)
        summary.ticks_skipped[name] += skipped
        log.warning(
            "%s: %s tick(s) from %s %s: skipped (coalesced into the latest within"
            " misfire_grace %s); %s",
            name,
            f"{skipped:,}" if skipped < MAX_COUNTED_TICKS else f"{MAX_COUNTED_TICKS:,}+",
            format_time(first),
            how,
            format_duration(trigger.misfire_grace),
            f"runs the tick of {format_time(until)}"
            if until <= now
            else f"next {format_time(until)}",
        )

    @staticmethod
    def _look_at_everyone(name: str, now: datetime) -> Run:
        """The run that looks at every customer once when the segment campaigns are new or
        changed (which books each one's next look), at the time it began: with the ticks due
        (a customer's batch is one decision with each at its time), and, in a pass that goes on
        with it after a crash, before the later events of the customers it has still to go
        over, as an uninterrupted pass did. Its look takes the hourly sweeps by then, which
        its batches do not take apart (a backlog's looks at past hours); those after it are."""
        return Run(
            name,
            now,
            lambda engine, due, ids: engine.sweep_segments(due, ids),
            lambda _due: NEVER,  # once per version of the segment campaigns
            waits_within=FULL_SWEEP_WAITS,
            setup=lambda engine, due: engine.segments.looks_at_everyone(due),
        )

    def _segments(self, summary: TickSummary, now: datetime) -> None:
        """The hourly segment sweeps, after the look at everyone: only the customers whose
        booked look is due."""
        if self.full_sweep is None:
            return
        # the next sweep of the hourly grid (a look is taken once, whoever sweeps it)
        origin = self.store.record_schedule(SEGMENTS, first_sweep_from(now), exact=False)
        if origin is None or origin > now:
            return
        sweep = origin
        while (at := self._next_sweep(sweep, now)) is not None:
            while (taken := self.looks(summary, now, at)) > 0:
                summary.swept_customers += taken
            sweep = at + SEGMENT_SWEEP
        self.store.set_schedule(SEGMENTS, grid_after(origin, now))

    def _next_sweep(self, sweep: datetime, now: datetime) -> datetime | None:
        """The first sweep of the hourly grid, from ``sweep`` on and by ``now``, that a look is
        due at: the first at or after the earliest look (``None``: none by ``now``). A pass
        that runs late sweeps each hour it missed, as ``simulate`` does."""
        earliest = self.store.earliest_look()
        if earliest is None:
            return None
        at = max(sweep, grid_after(sweep, earliest - _MICROSECOND))
        return at if at <= now else None

    def looks(self, summary: TickSummary, now: datetime, at: datetime) -> int:
        """Sweep at ``at`` (a sweep of the grid, by ``now``) a batch of the customers whose
        segment look is due by then, with all they have due; the sweep books each one's next
        look after ``at``. A customer merged away is dropped (its survivor was checked).
        Returns how many looks it took."""
        with self.store.looks(at, now) as work:
            if work is None:
                return 0
            ids = list(work.ids)
            if ids:
                self.driver.decide(
                    work, now, summary, [(at, lambda engine: engine.sweep_segments(at, ids))]
                )
        self.driver.committed(work)
        summary.events += len(work.events)
        return work.looks_taken

    def _every_customer(
        self, runs: Sequence[Run], now: datetime, summary: TickSummary
    ) -> Counter[str]:
        """Each of ``runs`` due by ``now`` acts on every live customer, a batch per
        transaction that records how far it got (a crash resumes), then moves its schedule to
        its next due time. Returns how many customers each run went over. The runs due go
        over the customers together: a customer's batch is one decision, each run's act at its
        due time in the order of ``runs``, between the customer's events and timers in time
        order, so a tick sees the customer as of its instant, whatever another tick of the pass
        did or saw. Runs left under way at different places (a crash,
        a customer another pass held) go on from the one furthest behind, which catches up with
        the next one's place and then goes on with it.

        The rows are held together by one pass at a time, for a batch: another pass waits
        for them rather than take the customers' later events first. The customers are taken
        in id order up to the first one another pass holds: the rows record how far they got,
        so none is passed over; a later pass goes on from there."""
        by_name = {run.name: run for run in runs}
        for run in runs:  # passes split in another count, in the middle of a tick: left
            if self.store.record_schedule(run.name, run.first) is None:
                del by_name[run.name]
        done: Counter[str] = Counter()
        while by_name:
            with self.store.schedules(list(by_name)) as rows:
                if len(rows) < len(by_name):  # gone: another pass took over (a new count)
                    return done
                due = {name: row for name, row in rows.items() if row.due_at <= now}
                if not due:
                    return done
                together, ahead = _furthest_behind(due)
                lead = due[together[0]]
                going = {name: due[name].due_at for name in together}
                work = lead.next_customers(now, through=ahead, runs=going)
                if work is None:
                    if not lead.finished:  # the next customer is another pass's
                        for name in together:  # begun on time, though at no customer yet:
                            if due[name].place is None:  # a later pass goes on with it
                                due[name].advance(BEGUN)
                        summary.tick_left = any(
                            now - due[name].due_at <= by_name[name].waits_within
                            for name in together
                        )
                        if not summary.tick_left:
                            log.warning(
                                "%s: stopped at a customer another pass holds, past its"
                                " misfire_grace: the pass goes on with the other events",
                                together[0],
                            )
                        return done
                    for name in together:
                        if ahead is None:
                            due[name].move(by_name[name].following(due[name].due_at))
                            del by_name[name]
                        else:  # none left before the place ahead: caught up
                            due[name].advance(ahead)
                    continue
                acts = [
                    by_name[name].acting(due[name].due_at, work.profiles_for(name))
                    for name in together
                ]
                setups = [
                    partial(_set_up, setup, due[name].due_at)
                    for name in together
                    if (setup := by_name[name].setup) is not None
                ]
                self.driver.decide(work, now, summary, acts, setups)
                for name in together:
                    due[name].advance(work.place)
            self.driver.committed(work)
            summary.events += len(work.events)
            for name in together:
                done[name] += len(work.run)
        return done


@dataclass(frozen=True)
class Run:
    """A schedule's run over every customer: its row's name, when it is first due, what it
    does, and when it is due next after a run due at a time."""

    name: str
    first: datetime
    act: Act
    following: Callable[[datetime], datetime]
    # how long after its due time a run stopped at a customer another pass holds ends the
    # pass (the other events would come before it); later, events go on (a session that
    # holds a customer for hours does not stop the partition): a tick's misfire_grace
    waits_within: timedelta = timedelta(0)
    # sets the engine of each batch up once loaded, given the run's due time
    setup: Callable[[JourneyEngine, datetime], None] | None = None

    def acting(self, due: datetime, ids: Sequence[str]) -> tuple[datetime, DriverAct]:
        """The act, at its due time, on ``ids`` (the engine passes over those merged away)."""
        return due, lambda engine: self.act(engine, due, ids)


def _set_up(
    setup: Callable[[JourneyEngine, datetime], None], due: datetime, engine: JourneyEngine
) -> None:
    """A run's ``setup`` of a batch's engine, given the run's due time."""
    setup(engine, due)


def _furthest_behind(due: Mapping[str, ScheduleRow]) -> tuple[list[str], str | None]:
    """The rows of ``due`` (in the order of the runs) furthest behind, which go over the
    customers together, and the place of the next rows ahead of them (``None``: none ahead).
    Not under way is furthest behind; places compare as strings: customer ids are ``c_`` and
    16 hex digits (:func:`engine.identity.customer_id_for`), in the same order in Python and
    in any collation of the database."""
    places = sorted({row.place for row in due.values() if row.place is not None})
    if any(row.place is None for row in due.values()):
        behind, ahead = None, (places[0] if places else None)
    else:
        behind, ahead = places[0], (places[1] if len(places) > 1 else None)
    return [name for name, row in due.items() if row.place == behind], ahead


def tick_to_run(trigger: ScheduleTrigger, due_at: datetime, now: datetime, zone: str) -> datetime:
    """The tick a pass at ``now`` runs of a schedule due at ``due_at`` with no run under way
    (:meth:`StoredSchedules._coalesce`): the latest tick due by ``now`` and within the
    ``misfire_grace``, else the next one to come."""
    if now - due_at <= trigger.misfire_grace:
        due = due_at  # on time enough: it, or a later one due by now
    else:
        due = next_tick(trigger, now - trigger.misfire_grace, zone)
    while due <= now and (following := next_tick(trigger, due, zone)) <= now:
        due = following
    return due


def _ticks_between(trigger: ScheduleTrigger, first: datetime, until: datetime, zone: str) -> int:
    """How many ticks of ``trigger`` fall in ``[first, until)`` (at most MAX_COUNTED_TICKS)."""
    count, tick = 0, first
    while tick < until and count < MAX_COUNTED_TICKS:
        count += 1
        tick = next_tick(trigger, tick, zone)
    return count


def grid_after(origin: datetime, moment: datetime) -> datetime:
    """The first sweep of the hourly grid through ``origin`` that is after ``moment`` (at the
    earliest ``origin``: the sweeps before it are done)."""
    if moment < origin:
        return origin
    return origin + ((moment - origin) // SEGMENT_SWEEP + 1) * SEGMENT_SWEEP


def sweep_of(origin: datetime, look: datetime) -> datetime:
    """The sweep of the hourly grid through ``origin`` that takes a look due at ``look``: the
    first at or after it, before ``origin`` too (a look left for a later batch: a merged
    profile's, whose survivor's work takes it)."""
    return origin + -((origin - look) // SEGMENT_SWEEP) * SEGMENT_SWEEP


def full_sweep_name(book: CampaignBook) -> str | None:
    """The schedule of the one sweep of every customer that the active segment campaigns, at
    their versions, need (``None``: there are none)."""
    versions = sorted(
        (c.id, book.version_of[c.id]) for c in book.active if isinstance(c.trigger, SegmentTrigger)
    )
    if not versions:
        return None
    return f"{SEGMENTS}:{hashlib.sha256(json.dumps(versions).encode()).hexdigest()[:16]}"
