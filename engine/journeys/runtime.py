"""The journey engine: events and the time in, journey decisions out.

Deterministic: the same campaigns and events give the same plan, byte for byte. Time only moves
when :meth:`JourneyEngine.advance_to` is told; waits are timers in a queue, never sleeps. The
engine keeps no clock of its own: schedule ticks and segment sweeps are its caller's, booked with
:meth:`JourneyEngine.call_at` (``simulate``'s :mod:`engine.journeys.virtual_clock`) or acted on
directly (the durable runtime's passes). Every decision is a :class:`PlanLine` with its reason.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from engine.campaigns.expressions import Expression, sandbox
from engine.campaigns.schema import (
    AdsSend,
    AnySend,
    Campaign,
    CampaignStatus,
    EventTrigger,
    IfStep,
    SplitStep,
    UpdateStep,
    WaitForEvent,
    WaitStep,
    WaitUntil,
    WhileActive,
    walk_steps,
)
from engine.double_opt_in import is_transactional
from engine.events import CAMPAIGN_CHANNEL, LAST_ARRIVAL, Event, EventType, OrderKey
from engine.journeys import steps as position
from engine.journeys.context import (
    choose_variant,
    is_held_out,
    journey_id,
    names,
)
from engine.journeys.customers import Customers, Resolved
from engine.journeys.dispatch import Dispatcher, PendingSend
from engine.journeys.journey import EntryRefused, Journey, Timer, entry_order, finished
from engine.journeys.outcomes import (
    ExitReason,
    JourneyStatus,
    NotEntered,
    SendStatus,
    SkipReason,
    TimerKind,
)
from engine.journeys.plan import CustomerRef, PlanAction, PlanLine
from engine.journeys.segments import SegmentTriggers
from engine.journeys.wakeups import SweepGrid
from engine.json_values import as_json
from engine.policies import next_local_time

# Enum members and values looked up once, here: on Python 3.11 ``EventType.TRACK`` goes through
# ``EnumType.__getattr__`` and ``PlanAction("send")`` through ``EnumType.__call__`` (each about
# a microsecond), and the hot paths take them for every event and every plan line.
_TRACK = EventType.TRACK
_RESTART = WhileActive.RESTART
_ENTER, _EXIT, _CONVERT = PlanAction.ENTER, PlanAction.EXIT, PlanAction.CONVERT
_PLAN_ACTION: dict[str, PlanAction] = {action.value: action for action in PlanAction}
_ACTIVE, _COMPLETED, _EXITED = JourneyStatus.ACTIVE, JourneyStatus.COMPLETED, JourneyStatus.EXITED
_RESUME, _TIMEOUT, _SEND = TimerKind.RESUME, TimerKind.TIMEOUT, TimerKind.SEND
_CALL = TimerKind.CALL
_CALLS_FIRST = 2**62  # a caller's action sorts before the journey timers of its instant
_CALLS_PER_RANK = 2**40  # room for that many calls of one rank before the next (2**22 ranks)
_SENT, _SKIPPED = SendStatus.SENT, SendStatus.SKIPPED
_DEFERRED = "deferred"  # what taking a send step returns when the send waits for its hours
_REMOVE = PlanAction.AUDIENCE_REMOVE.value  # an ad audience removal: goes on after its journey
# whether an email's body template renders for (customer, state, trigger event, now): a send
# whose body cannot render is skipped when decided, as one whose subject cannot
RendersBody = Callable[[str, str, Any, Event | None, datetime], bool]
# a caller's own action at a time (a schedule tick, a segment sweep), told the time
Action = Callable[[datetime], None]


class JourneyEngine:
    """Runs campaigns over customers; collects the plan.

    ``simulate`` runs it over every customer on a virtual clock. The durable runtime
    (:mod:`engine.durable`) loads a few customers' journeys, timers and entries into it, lets it
    decide, and writes back what changed: the same decisions, on the same code. Journeys of a
    campaign in ``held`` (paused) keep their place and take no step until it is active again.
    With ``prune_finished`` (a caller that keeps every customer loaded for the whole run, and
    writes nothing back), journeys nothing can change any more leave their customer's list.
    """

    def __init__(
        self,
        campaigns: Iterable[Campaign],
        customers: Customers,
        dispatcher: Dispatcher,
        default_timezone: str,
        include_drafts: bool = True,
        held: frozenset[str] = frozenset(),
        check_body: RendersBody | None = None,
        prune_finished: bool = False,
    ) -> None:
        runnable = {CampaignStatus.ACTIVE} | ({CampaignStatus.DRAFT} if include_drafts else set())
        self.campaigns = sorted((c for c in campaigns if c.status in runnable), key=lambda c: c.id)
        self.customers = customers
        self.dispatcher = dispatcher
        self.default_timezone = default_timezone
        self.held = held
        self.check_body = check_body
        # (journey, step) -> the customer's state a send was decided ``sent`` on, when kept
        # (the durable engine renders the content it stores from it, not from a later state)
        self.decided_states: dict[tuple[str, str], Any] | None = None
        self.plan: list[PlanLine] = []
        self.refused: list[EntryRefused] = []
        # per campaign: trigger events seen, and those its ``where:`` refused (for summaries)
        self.triggered: Counter[str] = Counter()
        self.where_refused: Counter[str] = Counter()
        self.held_steps: list[Timer] = []  # steps of held journeys, to take once resumed
        # customers an update step wrote traits to: their segments are looked at once the
        # event or timer that ran the step is done, as after an identify of theirs
        self._updated: dict[str, None] = {}
        # what the engine is taking now, in event order: the event's key, or (time,
        # LAST_ARRIVAL) for a timer; a send held by quiet hours keeps it (see _exit)
        self._moment: OrderKey = (datetime.min.replace(tzinfo=UTC), 0)
        # (due, sequence, timer): tuples compare in C, where Timer's generated ordering runs
        # Python code for every comparison the heap makes
        self._timers: list[tuple[datetime, int, Timer]] = []
        self._sequence = 0
        self._calls = 0  # the caller's actions booked (call_at), ordered among themselves
        self._journeys: dict[str, Journey] = {}
        self._by_customer: dict[str, list[Journey]] = {}
        self._last_entry: dict[tuple[str, str], datetime] = {}
        self._by_event: dict[str, list[Campaign]] = {}
        for campaign in self.campaigns:
            if isinstance(campaign.trigger, EventTrigger):
                self._by_event.setdefault(campaign.trigger.event, []).append(campaign)
        self.segments = SegmentTriggers(self, self.campaigns)
        self._watchers: list[Callable[[str], None]] = []  # told of each state changed
        self._prune_finished = prune_finished
        self._resolved_watchers: list[Callable[[Event, Resolved], None]] = []
        self._subjects: dict[str, Callable[..., str]] = {}
        # the event names a running journey reacts to (exits, goals, waits for an event), of
        # every campaign a journey here runs; by id, the campaign kept so the id stays its own
        self._reacting: set[str] = set()
        self._listened: dict[int, Campaign] = {}
        for campaign in self.campaigns:
            self._listen_for(campaign)

    # --- loading and saving (the durable runtime) --------------------------------------------

    def load_journey(self, journey: Journey) -> None:
        """Take back a journey kept in the database (load a customer's in entry order)."""
        self._listen_for(journey.campaign)  # maybe a version no longer active
        self._journeys[journey.id] = journey
        self._by_customer.setdefault(journey.customer_id, []).append(journey)

    def load_timer(self, due: datetime, kind: TimerKind, payload: Any) -> None:
        """Take back a kept timer (load them in due order, as kept)."""
        self._push(due, kind, payload)

    def load_member(
        self, campaign_id: str, customer_id: str, last_entry: datetime | None, in_segment: bool
    ) -> None:
        """Take back a customer's last entry into a campaign and its segment's last value."""
        if last_entry is not None:
            self._last_entry[(campaign_id, customer_id)] = last_entry
        if in_segment:
            self.segments.was[(campaign_id, customer_id)] = True

    def journeys(self) -> list[Journey]:
        """Every journey the engine holds."""
        return list(self._journeys.values())

    def timers(self) -> list[Timer]:
        """Every timer not yet fired, in firing order."""
        return [timer for _, _, timer in sorted(self._timers)]

    def members(self) -> dict[tuple[str, str], tuple[datetime | None, bool]]:
        """``(campaign, customer) -> (last entry, segment true)`` for every pair known."""
        was = self.segments.was
        keys = self._last_entry.keys() | was.keys()
        return {key: (self._last_entry.get(key), was.get(key, False)) for key in keys}

    def book_segment_looks(self, grid: SweepGrid, search_when_saved: bool = True) -> None:
        """Book on ``grid`` each customer's next look at the segment campaigns, whenever their
        segments are checked. With ``search_when_saved`` (a runtime that keeps the bookings,
        :meth:`segment_looks`), the search for when a condition turns waits for
        :meth:`segment_looks` and runs once per customer, from their last check: a batch with
        many events of one customer searches once, and the earlier checks' answers lie in the
        past."""
        self.segments.book_looks(grid, search_when_saved)

    def watch_states(self, watcher: Callable[[str], None]) -> None:
        """Tell ``watcher`` the id of each customer whose state changes (an event, an update)."""
        self._watchers.append(watcher)

    def watch_resolved(self, watcher: Callable[[Event, Resolved], None]) -> None:
        """Tell ``watcher`` whose each event taken is, and which profiles it merged."""
        self._resolved_watchers.append(watcher)

    def next_due(self) -> datetime | None:
        """When the first timer is due (``None``: no timer is set)."""
        return self._timers[0][0] if self._timers else None

    def segment_looks(self) -> dict[str, datetime]:
        """The next look booked for each customer checked (nothing when no grid is kept)."""
        return self.segments.looks()

    def _listen_for(self, campaign: Campaign) -> None:
        if id(campaign) not in self._listened:
            self._listened[id(campaign)] = campaign
            self._reacting |= _reacted_to(campaign)

    # --- the clock ---------------------------------------------------------------------------

    def advance_to(self, until: datetime) -> None:
        """Fire every timer due at or before ``until``, in time order."""
        timers = self._timers
        while timers and timers[0][0] <= until:
            self._fire(heapq.heappop(timers)[2])

    def advance_before(self, event_time: datetime) -> None:
        """Fire every timer due before an event at ``event_time``: an event comes before the
        timers due at its very instant (an unsubscribe stops the send due that second, the
        event waited for at the timeout's instant is in time, a customer identified at the
        instant of a schedule tick is in its audience)."""
        timers = self._timers
        while timers and timers[0][0] < event_time:
            self._fire(heapq.heappop(timers)[2])

    def call_at(self, due: datetime, action: Action, rank: int = 0) -> None:
        """Call ``action(due)`` when the engine advances to ``due``: after the events of that
        instant, before the journeys' timers due at it (a tick's entries and a sweep's come
        first, whenever the timers were set), and after the actions of a lower ``rank`` and
        those of its rank booked before it (so the order of a tick and a sweep at one instant
        does not depend on when each was booked)."""
        self._calls += 1
        # below every journey timer's sequence
        sequence = rank * _CALLS_PER_RANK + self._calls - _CALLS_FIRST
        heapq.heappush(self._timers, (due, sequence, Timer(due, sequence, _CALL, action)))

    def _push(self, due: datetime, kind: TimerKind, payload: Any) -> None:
        self._sequence += 1
        timer = Timer(due, self._sequence, kind, payload)
        heapq.heappush(self._timers, (due, self._sequence, timer))

    def _fire(self, timer: Timer) -> None:
        self._take(timer)
        if self._updated:
            self._look_after_updates(timer.due)

    def _look_after_updates(self, at: datetime, looked: str | None = None) -> None:
        """The segment conditions of the customers an update step wrote to, looked at now:
        an update is an identify made by the campaign, and segments are looked at after each
        of a customer's events. What a look enters may update again: looked at in turn, as
        many times per event or timer as there are segment campaigns (a chain of them turns
        at once, in whatever order their ids sort; ``looked``: the event's own look counts),
        then at the next sweep, so campaigns that turn each other's segments in a ring cannot
        loop at one instant."""
        budget = len(self.segments.campaigns)
        looks = {looked: 1} if looked is not None else {}
        while self._updated:
            customer_id = next(iter(self._updated))
            del self._updated[customer_id]
            if not self.customers.has(customer_id):  # merged away since
                continue
            taken = looks.get(customer_id, 0)
            if taken >= budget:
                self.segments.look_soon(customer_id, at)
                continue
            looks[customer_id] = taken + 1
            self.segments.check(customer_id, at)

    def _take(self, timer: Timer) -> None:
        """What a due timer does: a journey's wait or timeout, a held send, a caller's action."""
        at = timer.due
        self._moment = (at, LAST_ARRIVAL)  # after every event of its instant
        kind = timer.kind
        if kind is _RESUME or kind is _TIMEOUT:
            journey_ref, generation = timer.payload
            journey = self._journeys[journey_ref]
            if journey.status is not _ACTIVE or journey.generation != generation:
                return
            if kind is _TIMEOUT:
                wait = position.current(journey.at).step
                assert isinstance(wait, WaitStep)
                journey.waiting_for = None
                journey.at = position.enter_branch(journey.at, wait.else_, "else")
            self._run(journey, at, journey.trigger)
        elif kind is _SEND:
            pending = timer.payload
            journey = self._journeys[pending.journey]
            if journey.status is _EXITED and not journey.parked and pending.action != _REMOVE:
                return  # the journey ended before the send came due (see _exit): never taken
            outcome = self._deliver(pending, at)
            if outcome != _DEFERRED and journey.parked and journey.status is _ACTIVE:
                journey.parked = False
                journey.parked_key = None
                journey.at = position.advance(journey.at)
                self._run(journey, at, journey.trigger)
        elif kind is _CALL:
            timer.payload(at)

    def enter_scheduled(
        self, campaign: Campaign, at: datetime, customer_ids: Iterable[str]
    ) -> None:
        """A tick of a schedule-triggered campaign: every customer matching its audience enters
        (of ``customer_ids``, those not merged away by the events taken). A customer this tick
        already entered is passed over: a durable run that went over a profile may meet it
        again as a profile merged since into one it has still to go over."""
        customers = self.customers
        last_entry = self._last_entry
        for customer_id in customer_ids:
            if customers.has(customer_id) and last_entry.get((campaign.id, customer_id)) != at:
                self._prune(customer_id, at)
                self.try_enter(campaign, customer_id, at, None)

    def _prune(self, customer_id: str, at: datetime) -> None:
        """With ``prune_finished``, drop from the customer's list the journeys nothing can
        touch any more (ended, no ad audience held, no conversion to come), so a weekly
        newsletter's thousand finished journeys do not slow every later look at them."""
        if not self._prune_finished:
            return
        kept = self._by_customer.get(customer_id)
        if kept and any(j.status is not _ACTIVE and finished(j, at) for j in kept):
            kept[:] = [j for j in kept if not finished(j, at)]

    def _state_changed(self, customer_id: str) -> None:
        for watcher in self._watchers:
            watcher(customer_id)

    def sweep_segments(self, at: datetime, customer_ids: Iterable[str]) -> None:
        """Re-evaluate the segment triggers as time passes, for these customers (those not
        merged away by the events taken); the looks booked for them by ``at`` are taken."""
        if self.segments.campaigns:
            self.segments.sweep(at, customer_ids)

    # --- events ------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """An event arrives at its own time (call :meth:`advance_before` first)."""
        self._moment = event.order_key
        resolved = self.customers.apply(event)
        customer_id = resolved.customer_id
        for resolved_watcher in self._resolved_watchers:
            resolved_watcher(event, resolved)
        if customer_id in self._by_customer:  # most events come from customers in no journey
            self._prune(customer_id, event.timestamp)
        if self._watchers:
            self._state_changed(customer_id)
        at = event.timestamp
        for merged_id in resolved.merged:
            self._merge_journeys(merged_id, customer_id, at)
        kept = self._by_customer.get(customer_id)
        if kept:
            # a view mostly concerns no journey; goals, exits and waits name track events, as
            # triggers do (a page named "Order Completed" is no order)
            if event.name in self._reacting and event.type is _TRACK:
                self._on_customer_event(kept, event)
            self._check_ads_consent(customer_id, at)
        if event.type is _TRACK:
            for campaign in self._by_event.get(event.name, ()):
                trigger = campaign.trigger
                assert isinstance(trigger, EventTrigger)
                self.triggered[campaign.id] += 1
                if trigger.where is None or trigger.where.holds(
                    names(customer_id, self.customers.state(customer_id), event, at)
                ):
                    self.try_enter(campaign, customer_id, at, event)
                else:
                    self.where_refused[campaign.id] += 1
        if self.segments.campaigns:
            self._updated.pop(customer_id, None)  # looked at here, after the event's updates
            self.segments.check(customer_id, at)
            if self._updated:  # what this look entered may update (them, or others)
                self._look_after_updates(at, looked=customer_id)

    def _on_customer_event(self, kept: list[Journey], event: Event) -> None:
        """What ``event`` does to the journeys the customer is in (``kept``): goals, exits,
        waits for it, and the ad audiences a conversion ends."""
        at = event.timestamp
        order_key = event.order_key
        journeys = [j for j in kept if j.status is not _EXITED and order_key > j.entry_key]
        converted = self._convert(journeys, event) if journeys else []
        for journey in journeys:
            self._on_journey_event(journey, event)
        for journey in converted:
            self._leave_audiences(journey, at)  # a converted customer stops seeing the ad

    def _check_ads_consent(self, customer_id: str, at: datetime) -> None:
        """Ads consent withdrawn: out of every audience, those kept after a journey
        (``remove_on_exit: false``) too. The state is read only when there is an audience to
        leave: reading it folds the customer's latest events."""
        holding = [
            j for j in self._by_customer.get(customer_id, ()) if j.audiences or j.kept_audiences
        ]
        if holding and not self.customers.state(customer_id).consent.ads:
            for journey in holding:
                self._leave_audiences(journey, at, kept=True)

    def _convert(self, journeys: list[Journey], event: Event) -> list[Journey]:
        """A goal event converts one journey per campaign: the latest entry whose window holds
        it (so one order is never counted twice). A journey converts at every goal event in
        its window: REPORTS.md counts a conversion per goal event, and a converted journey as
        one with at least one."""
        at = event.timestamp
        by_campaign: dict[str, Journey] = {}
        for journey in journeys:
            goal = journey.campaign.goal
            if (
                goal is not None
                and event.name == goal.event
                and (goal.within is None or at - journey.entered_at <= goal.within)
            ):
                held = by_campaign.get(journey.campaign.id)
                # the latest entry, whatever the order held (a late trigger comes last)
                if held is None or entry_order(journey) > entry_order(held):
                    by_campaign[journey.campaign.id] = journey
        for journey in by_campaign.values():
            goal = journey.campaign.goal
            assert goal is not None
            journey.converted = True
            fields: dict[str, Any] = {"event": event.name}
            if goal.value is not None:
                state = self.customers.state(journey.customer_id)
                scope = names(journey.customer_id, state, event, at)
                fields["value"] = _value_or_none(goal.value, scope)
            if journey.held_out:
                fields["holdout"] = True
            self._line(journey, _CONVERT, at, fields=fields)
        return list(by_campaign.values())

    def _on_journey_event(self, journey: Journey, event: Event) -> None:
        campaign = journey.campaign
        at = event.timestamp
        if any(rule.event == event.name for rule in campaign.exit):
            # a completed journey has nothing left to end, unless it still shows an ad
            if journey.status is _ACTIVE or journey.audiences:
                self._exit(journey, at, ExitReason.EXIT_EVENT, {"event": event.name})
            return
        waiting = journey.waiting_for
        if journey.status is _ACTIVE and waiting is not None and waiting.event == event.name:
            wait = position.current(journey.at).step
            assert isinstance(wait, WaitStep)
            journey.waiting_for = None
            journey.generation += 1  # the timeout no longer applies
            depth = len(journey.at)  # the branch's steps are deeper: they see this event
            journey.at = position.enter_branch(journey.at, wait.then, "then")
            self._run(journey, at, event, depth)

    def _merge_journeys(self, merged_id: str, survivor_id: str, at: datetime) -> None:
        self.dispatcher.merge(merged_id, survivor_id)
        self.segments.merge(merged_id, survivor_id)
        for campaign in self.campaigns:
            merged_key, survivor_key = (campaign.id, merged_id), (campaign.id, survivor_id)
            entries = [self._last_entry.pop(merged_key, None), self._last_entry.get(survivor_key)]
            known = [entry for entry in entries if entry is not None]
            if known:
                self._last_entry[survivor_key] = max(known)
        moved = self._by_customer.pop(merged_id, [])
        kept = self._by_customer.setdefault(survivor_id, [])
        for journey in moved:
            journey.customer_id = survivor_id
            twin = next(
                (j for j in kept if j.campaign.id == journey.campaign.id and j.status is _ACTIVE),
                None,
            )
            kept.append(journey)
            if journey.status is _ACTIVE and twin is not None:
                # one journey per campaign survives a merge: the one that entered first
                later = max((journey, twin), key=entry_order)
                self._exit(later, at, ExitReason.MERGED)
        kept.sort(key=entry_order)

    # --- entry and exit ----------------------------------------------------------------------

    def last_entry(self, campaign_id: str, customer_id: str) -> datetime | None:
        """When the customer last entered the campaign, if ever (as far as known)."""
        return self._last_entry.get((campaign_id, customer_id))

    def running(self, customer_id: str, campaign_id: str) -> bool:
        """Whether the customer has an active journey of the campaign."""
        return bool(self._active(customer_id, campaign_id))

    def _active(self, customer_id: str, campaign_id: str) -> list[Journey]:
        """The customer's active journeys of the campaign (one, but for a merge or restart)."""
        return [
            j
            for j in self._by_customer.get(customer_id, ())
            if j.campaign.id == campaign_id and j.status is _ACTIVE
        ]

    def try_enter(
        self, campaign: Campaign, customer_id: str, at: datetime, event: Event | None
    ) -> bool:
        """Start a journey of ``campaign`` for the customer at ``at`` (on ``event``, or a
        tick or segment look) unless the audience or entry rules refuse it (recorded)."""
        if campaign.audience is not None and not campaign.audience.holds(
            names(customer_id, self.customers.state(customer_id), event, at)
        ):
            if event is not None:  # a tick or sweep misses most customers: not worth a record
                self._refuse(campaign, customer_id, at, NotEntered.AUDIENCE)
            return False
        entry = campaign.entry
        campaign_id = campaign.id
        running = self._active(customer_id, campaign_id)
        # A restart debounces the running journey (the abandoned cart's latest add); it is not
        # a re-entry, so the cooldown does not hold it back. ``once`` allows one journey, ever.
        restart = bool(running) and entry.while_active is _RESTART and not entry.once
        last = self._last_entry.get((campaign_id, customer_id))
        if (
            not restart
            and last is not None
            and (entry.once or (entry.cooldown and at - last < entry.cooldown))
        ):
            refusal = NotEntered.ONCE if entry.once else NotEntered.COOLDOWN
            self._refuse(campaign, customer_id, at, refusal)
            return False
        if running and not restart:
            self._refuse(campaign, customer_id, at, NotEntered.ALREADY_ACTIVE)
            return False
        for journey in running:
            self._exit(journey, at, ExitReason.RESTARTED)
        message_id = event.message_id if event is not None else "schedule"
        journey = Journey(
            id=journey_id(campaign_id, customer_id, at, message_id),
            campaign=campaign,
            customer_id=customer_id,
            entered_at=at,
            held_out=is_held_out(campaign_id, customer_id, campaign.holdout),
            # a scheduled entry comes after every event of its instant (events go first)
            entry_key=event.order_key if event is not None else (at, LAST_ARRIVAL),
            at=position.start(campaign.steps),
            trigger=event,
        )
        self._journeys[journey.id] = journey
        self._by_customer.setdefault(customer_id, []).append(journey)
        self._last_entry[(campaign_id, customer_id)] = at
        self._line(journey, _ENTER, at, fields={"holdout": True} if journey.held_out else {})
        self._run(journey, at, event)
        return True

    def _refuse(
        self, campaign: Campaign, customer_id: str, at: datetime, reason: NotEntered
    ) -> None:
        self.refused.append(EntryRefused(at, campaign.id, customer_id, reason))

    def _exit(
        self,
        journey: Journey,
        at: datetime,
        reason: ExitReason,
        fields: dict[str, Any] | None = None,
    ) -> None:
        journey.status = _EXITED
        journey.generation += 1
        if journey.parked and journey.parked_key is not None and journey.parked_key > self._moment:
            # held on a send that came due after what ends it, in event order: a late event
            # (the durable runtime took the send's time first); simulate, taking the event
            # first, never got to the send, so it goes with no plan line
            journey.parked = False
        self._line(journey, _EXIT, at, reason=reason, fields=fields or {})
        self._leave_audiences(journey, at)

    def _leave_audiences(self, journey: Journey, at: datetime, kept: bool = False) -> None:
        """Remove the customer from the journey's ad audiences (with ``kept``, also those it
        keeps after its end), except those another journey of theirs still holds."""
        leaving = {**journey.kept_audiences, **journey.audiences} if kept else journey.audiences
        if not leaving:
            return
        held = {
            audience
            for other in self._by_customer.get(journey.customer_id, ())
            if other is not journey
            for audience in (
                *other.kept_audiences,
                *(other.audiences if other.status is not _EXITED else ()),
            )
        }
        if kept:
            journey.kept_audiences.clear()
        for audience, step in sorted(leaving.items()):
            if audience not in held:
                removal = {"audience": audience}
                variant = position.variant_at(journey.campaign.steps, step)
                if variant is not None:
                    removal["variant"] = variant  # like the audience_add of that step
                self._deliver(
                    PendingSend(journey.id, step, "ads", "audience_remove", removal, at), at
                )
        journey.audiences.clear()

    # --- running steps -----------------------------------------------------------------------

    def _run(
        self, journey: Journey, at: datetime, event: Event | None, branch_depth: int = 0
    ) -> None:
        """Take steps until the journey waits or completes. ``event`` is what the steps deeper
        than ``branch_depth`` frames see (a ``wait for``'s branch, the event it waited for);
        the steps after them see the event that triggered the journey."""
        if self.held and journey.campaign.id in self.held:
            self.held_steps.append(Timer(at, 0, _RESUME, (journey.id, journey.generation)))
            return
        while journey.status is _ACTIVE:
            if branch_depth and len(journey.at) <= branch_depth:  # out of the branch
                event, branch_depth = journey.trigger, 0
            frame = position.current(journey.at)
            step = frame.step
            if step is None:
                journey.status = _COMPLETED
                return
            state = self.customers.state(journey.customer_id)
            if isinstance(step, WaitStep):
                if self._wait(journey, step, at, state):
                    return
                continue
            scope = names(journey.customer_id, state, event, at)  # a wait needs none
            if isinstance(step, IfStep):
                branch, label = (
                    (step.then, "then") if step.if_.holds(scope) else (step.else_, "else")
                )
                journey.at = position.enter_branch(journey.at, branch, label)
            elif isinstance(step, SplitStep):
                weights = [(v.name, v.weight) for v in step.split]
                name = choose_variant(journey.campaign.id, journey.customer_id, frame.path, weights)
                chosen = next(v for v in step.split if v.name == name)
                journey.at = position.enter_branch(journey.at, chosen.steps, name, variant=name)
            elif isinstance(step, UpdateStep):
                self._update(journey, step, frame.path, at, scope)
                journey.at = position.advance(journey.at)
            else:
                taken = self._send_step(journey, step, frame.path, frame.variant, at, scope)
                if taken == _DEFERRED:
                    journey.parked = True  # held on this step until the send goes out
                    journey.parked_key = self._moment
                    return
                journey.at = position.advance(journey.at)

    def _wait(self, journey: Journey, step: WaitStep, at: datetime, state: Any) -> bool:
        spec = step.wait
        if isinstance(spec, WaitForEvent):
            journey.waiting_for = spec
            self._push(at + spec.timeout, _TIMEOUT, (journey.id, journey.generation))
            return True
        if isinstance(spec, WaitUntil):
            zone = state.timezone or self.default_timezone
            due = next_local_time(at, spec.until, zone)
        else:
            due = at + spec
        journey.at = position.advance(journey.at)
        self._push(due, _RESUME, (journey.id, journey.generation))
        return True

    def _update(
        self, journey: Journey, step: UpdateStep, path: str, at: datetime, scope: dict[str, Any]
    ) -> None:
        traits = {
            key: as_json(_value_or_none(expr, scope)) for key, expr in step.update.traits.items()
        }
        event = Event(
            message_id=f"{journey.id}:{path}",
            type=EventType.IDENTIFY,
            name="",
            timestamp=at,
            channel=CAMPAIGN_CHANNEL,
            traits=traits,
            arrival=LAST_ARRIVAL,  # after every event received at this instant
        )
        self.customers.append(journey.customer_id, event)
        self._state_changed(journey.customer_id)
        if self.segments.campaigns:  # the new traits may turn a segment: look once done
            self._updated[journey.customer_id] = None

    def _send_step(
        self,
        journey: Journey,
        step: AnySend,
        path: str,
        variant: str | None,
        at: datetime,
        scope: dict[str, Any],
    ) -> str:
        """Take a send step; returns ``sent``, ``skipped`` or ``deferred``."""
        fields: dict[str, Any] = {}
        action = "send"
        reason = SkipReason.HOLDOUT if journey.held_out else None
        if step.send == "email":
            fields = {"template": step.template}
            try:
                fields["subject"] = self._render(step.subject, scope)
            except Exception:  # noqa: BLE001 - a template that fails skips this send, not the run
                reason = reason or SkipReason.RENDER_ERROR
        elif isinstance(step, AdsSend):
            action = "audience_add"
            fields = {"audience": step.audience}
        elif step.send == "call":
            # the call's own ``reason`` goes to the call list (durable content), not the plan,
            # where ``reason`` is why a send was skipped
            fields = {"list": step.list_, "priority": step.priority or "normal"}
        else:
            fields = {"url": step.url}
        if variant is not None:
            fields["variant"] = variant
        if reason is not None:
            self._line(
                journey,
                _PLAN_ACTION[action],
                at,
                step=path,
                channel=step.send,
                status=_SKIPPED,
                reason=reason,
                fields=fields,
            )
            return _SKIPPED
        holds = isinstance(step, AdsSend) and step.remove_on_exit
        pending = PendingSend(journey.id, path, step.send, action, fields, at, holds)
        return self._deliver(pending, at)

    def _render(self, text: str, scope: dict[str, Any]) -> str:
        if "{" not in text and not text.endswith("\n"):
            return text  # plain text renders as itself (Jinja2 would only drop a final newline)
        template = self._subjects.get(text)
        if template is None:
            template = self._subjects[text] = sandbox().from_string(text).render
        return template(**scope)

    def _deliver(self, pending: PendingSend, at: datetime) -> str:
        """Decide a due send now: ``sent``, ``skipped``, or ``deferred`` (queued again)."""
        journey = self._journeys[pending.journey]
        state = self.customers.state(journey.customer_id)
        exited = journey.status is _EXITED
        renders = None
        if self.check_body is not None and pending.channel == "email" and pending.action == "send":
            template = str(pending.fields["template"])
            # asked only of a send the policies let through: most sends never render
            renders = partial(
                self.check_body, template, journey.customer_id, state, journey.trigger, at
            )
        outcome = self.dispatcher.decide(
            pending,
            journey.customer_id,
            state,
            at,
            exited,
            renders,
            transactional=is_transactional(journey.campaign.id),
        )
        if self.decided_states is not None and outcome.status is _SENT:
            self.decided_states[(journey.id, pending.step)] = state
        if outcome.defer_until is not None:
            self._push(outcome.defer_until, _SEND, pending)
            return _DEFERRED
        self._line(
            journey,
            _PLAN_ACTION[pending.action],
            at,
            step=pending.step,
            channel=pending.channel,
            status=outcome.status,
            reason=outcome.reason,
            fields=pending.fields,
        )
        if outcome.status is _SENT and pending.action == "audience_add":
            held = journey.audiences if pending.holds_audience else journey.kept_audiences
            held[str(pending.fields["audience"])] = pending.step
        return outcome.status or _SKIPPED

    # --- the plan ----------------------------------------------------------------------------

    def _line(
        self,
        journey: Journey,
        action: PlanAction,
        at: datetime,
        *,
        step: str | None = None,
        channel: str | None = None,
        status: SendStatus | None = None,
        reason: SkipReason | ExitReason | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        state = self.customers.state(journey.customer_id)
        self._sequence += 1
        self.plan.append(
            PlanLine(
                at=at,
                campaign=journey.campaign.id,
                journey=journey.id,
                action=action,
                customer=CustomerRef(journey.customer_id, state.user_id, state.email, state.phone),
                sequence=self._sequence,
                step=step,
                channel=channel,
                status=status,
                reason=reason,
                fields=fields or {},
            )
        )


def _value_or_none(expression: Expression, scope: Mapping[str, Any]) -> Any:
    """The expression's value, or ``None`` when it fails on this customer's data."""
    try:
        return expression.evaluate(scope)
    except Exception:  # noqa: BLE001 - bad data for one customer must not stop the others
        return None


def _reacted_to(campaign: Campaign) -> set[str]:
    """The event names that can change a running journey of ``campaign``: its exits, its goal
    and its waits for an event (see ``_on_customer_event``)."""
    names = {rule.event for rule in campaign.exit}
    if campaign.goal is not None:
        names.add(campaign.goal.event)
    for _, _, step in walk_steps(campaign.steps):
        if isinstance(step, WaitStep) and isinstance(step.wait, WaitForEvent):
            names.add(step.wait.event)
    return names
