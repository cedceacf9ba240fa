"""The journey engine: events and the clock in, journey decisions out, on a virtual clock.

Deterministic: the same campaigns and events give the same plan, byte for byte. Time only moves
when :meth:`JourneyEngine.advance_to` is told; waits are timers in a queue, never sleeps.
``simulate`` runs it over a file of events; every decision is a :class:`PlanLine` with its reason.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from engine.campaigns.expressions import sandbox
from engine.campaigns.schema import (
    AdsSend,
    AnySend,
    Campaign,
    CampaignStatus,
    EventTrigger,
    IfStep,
    ScheduleTrigger,
    SegmentTrigger,
    SplitStep,
    UpdateStep,
    WaitForEvent,
    WaitStep,
    WaitUntil,
    WhileActive,
)
from engine.events import Event, EventType
from engine.journeys import steps as position
from engine.journeys.context import (
    choose_variant,
    is_held_out,
    journey_id,
    names,
)
from engine.journeys.dispatch import Dispatcher, PendingSend
from engine.journeys.memory_customers import InMemoryCustomers
from engine.journeys.plan import CustomerRef, PlanAction, PlanLine
from engine.policies import next_local_time

SEGMENT_SWEEP = timedelta(hours=1)


@dataclass
class Journey:
    """One customer in one campaign from one entry."""

    id: str
    campaign: Campaign
    customer_id: str
    entered_at: datetime
    held_out: bool
    at: position.Position
    generation: int = 0
    status: str = "active"  # active | completed | exited
    waiting_for: WaitForEvent | None = None
    waiting_since: datetime | None = None
    converted: bool = False
    audiences: dict[str, str] = field(default_factory=dict)  # audience -> step that added it


@dataclass(order=True)
class _Timer:
    due: datetime
    sequence: int
    kind: str = field(compare=False)
    payload: Any = field(compare=False)


class JourneyEngine:
    """Runs campaigns over customers in memory; collects the plan."""

    def __init__(
        self,
        campaigns: Iterable[Campaign],
        customers: InMemoryCustomers,
        dispatcher: Dispatcher,
        default_timezone: str,
        include_drafts: bool = True,
    ) -> None:
        runnable = {CampaignStatus.ACTIVE} | ({CampaignStatus.DRAFT} if include_drafts else set())
        self.campaigns = sorted((c for c in campaigns if c.status in runnable), key=lambda c: c.id)
        self.customers = customers
        self.dispatcher = dispatcher
        self.default_timezone = default_timezone
        self.plan: list[PlanLine] = []
        self.now: datetime | None = None
        self._timers: list[_Timer] = []
        self._sequence = 0
        self._journeys: dict[str, Journey] = {}
        self._by_customer: dict[str, list[Journey]] = {}
        self._last_entry: dict[tuple[str, str], datetime] = {}
        self._segment_was: dict[tuple[str, str], bool] = {}
        self._by_event: dict[str, list[Campaign]] = {}
        for campaign in self.campaigns:
            if isinstance(campaign.trigger, EventTrigger):
                self._by_event.setdefault(campaign.trigger.event, []).append(campaign)
        self._segments = [c for c in self.campaigns if isinstance(c.trigger, SegmentTrigger)]
        self._subjects: dict[str, Callable[..., str]] = {}

    # --- the clock ---------------------------------------------------------------------------

    def start(self, at: datetime) -> None:
        """Start the clock at ``at``: schedule ticks and segment sweeps from there."""
        self.now = at
        for campaign in self.campaigns:
            if isinstance(campaign.trigger, ScheduleTrigger):
                self._schedule_next_tick(campaign, at)
        if self._segments:
            self._push(at + SEGMENT_SWEEP, "sweep", None)

    def advance_to(self, until: datetime) -> None:
        """Fire every timer due at or before ``until``, in time order."""
        while self._timers and self._timers[0].due <= until:
            timer = heapq.heappop(self._timers)
            self.now = max(self.now or timer.due, timer.due)
            self._fire(timer)
        self.now = until

    def _push(self, due: datetime, kind: str, payload: Any) -> None:
        self._sequence += 1
        heapq.heappush(self._timers, _Timer(due, self._sequence, kind, payload))

    def _fire(self, timer: _Timer) -> None:
        at = timer.due
        if timer.kind in ("resume", "timeout"):
            journey_ref, generation = timer.payload
            journey = self._journeys[journey_ref]
            if journey.status != "active" or journey.generation != generation:
                return
            if timer.kind == "timeout":
                wait = position.current(journey.at).step
                assert isinstance(wait, WaitStep)
                journey.waiting_for = None
                journey.at = position.enter_branch(journey.at, wait.else_, "else")
            self._run(journey, at, None)
        elif timer.kind == "send":
            self._deliver(timer.payload, at)
        elif timer.kind == "tick":
            campaign = timer.payload
            for customer_id in self.customers.ids():
                self._try_enter(campaign, customer_id, at, None)
            self._schedule_next_tick(campaign, at)
        elif timer.kind == "sweep":
            for customer_id in self.customers.ids():
                self._check_segments(customer_id, at)
            self._push(at + SEGMENT_SWEEP, "sweep", None)

    def _schedule_next_tick(self, campaign: Campaign, after: datetime) -> None:
        trigger = campaign.trigger
        assert isinstance(trigger, ScheduleTrigger)
        zone = ZoneInfo(trigger.timezone or self.default_timezone)
        following = croniter(trigger.schedule, after.astimezone(zone)).get_next(datetime)
        self._push(following.astimezone(after.tzinfo), "tick", campaign)

    # --- events ------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """An event arrives at its own time (call :meth:`advance_to` first)."""
        resolved = self.customers.apply(event)
        customer_id = resolved.customer_id
        at = event.timestamp
        for merged_id in resolved.merged:
            self._merge_journeys(merged_id, customer_id, at)
        for journey in list(self._by_customer.get(customer_id, ())):
            if journey.status == "exited" or event.timestamp <= journey.entered_at:
                continue
            self._on_journey_event(journey, event)
        for campaign in self._by_event.get(event.name, ()) if event.type is EventType.TRACK else ():
            trigger = campaign.trigger
            assert isinstance(trigger, EventTrigger)
            state = self.customers.state(customer_id)
            if trigger.where is None or trigger.where.holds(names(customer_id, state, event, at)):
                self._try_enter(campaign, customer_id, at, event)
        self._check_segments(customer_id, at)

    def _on_journey_event(self, journey: Journey, event: Event) -> None:
        campaign = journey.campaign
        goal = campaign.goal
        at = event.timestamp
        if (
            goal is not None
            and not journey.converted
            and event.name == goal.event
            and (goal.within is None or at - journey.entered_at <= goal.within)
        ):
            journey.converted = True
            fields: dict[str, Any] = {"event": event.name}
            if goal.value is not None:
                state = self.customers.state(journey.customer_id)
                fields["value"] = goal.value.evaluate(names(journey.customer_id, state, event, at))
            if journey.held_out:
                fields["holdout"] = True
            self._line(journey, PlanAction.CONVERT, at, fields=fields)
        if any(rule.event == event.name for rule in campaign.exit):
            self._exit(journey, at, "exit_event", {"event": event.name})
            return
        waiting = journey.waiting_for
        if journey.status == "active" and waiting is not None and waiting.event == event.name:
            wait = position.current(journey.at).step
            assert isinstance(wait, WaitStep)
            journey.waiting_for = None
            journey.generation += 1  # the timeout no longer applies
            journey.at = position.enter_branch(journey.at, wait.then, "then")
            self._run(journey, at, event)

    def _merge_journeys(self, merged_id: str, survivor_id: str, at: datetime) -> None:
        moved = self._by_customer.pop(merged_id, [])
        kept = self._by_customer.setdefault(survivor_id, [])
        for journey in moved:
            journey.customer_id = survivor_id
            twin = next(
                (j for j in kept if j.campaign.id == journey.campaign.id and j.status == "active"),
                None,
            )
            kept.append(journey)
            if journey.status == "active" and twin is not None:
                # one journey per campaign survives a merge: the one that entered first
                later = max((journey, twin), key=lambda j: (j.entered_at, j.id))
                self._exit(later, at, "merged")
        kept.sort(key=lambda j: (j.entered_at, j.id))

    def _check_segments(self, customer_id: str, at: datetime) -> None:
        for campaign in self._segments:
            trigger = campaign.trigger
            assert isinstance(trigger, SegmentTrigger)
            state = self.customers.state(customer_id)
            now_true = trigger.segment.holds(names(customer_id, state, None, at))
            key = (campaign.id, customer_id)
            was_true = self._segment_was.get(key, False)
            self._segment_was[key] = now_true
            if now_true and not was_true:
                self._try_enter(campaign, customer_id, at, None)

    # --- entry and exit ----------------------------------------------------------------------

    def _try_enter(
        self, campaign: Campaign, customer_id: str, at: datetime, event: Event | None
    ) -> None:
        state = self.customers.state(customer_id)
        if campaign.audience is not None and not campaign.audience.holds(
            names(customer_id, state, event, at)
        ):
            return
        entry = campaign.entry
        last = self._last_entry.get((campaign.id, customer_id))
        if last is not None and (entry.once or (entry.cooldown and at - last < entry.cooldown)):
            return
        running = [
            j
            for j in self._by_customer.get(customer_id, ())
            if j.campaign.id == campaign.id and j.status == "active"
        ]
        if running:
            if entry.while_active is WhileActive.IGNORE:
                return
            for journey in running:
                self._exit(journey, at, "restarted")
        message_id = event.message_id if event is not None else "schedule"
        journey = Journey(
            id=journey_id(campaign.id, customer_id, at, message_id),
            campaign=campaign,
            customer_id=customer_id,
            entered_at=at,
            held_out=is_held_out(campaign.id, customer_id, campaign.holdout),
            at=position.start(campaign.steps),
        )
        self._journeys[journey.id] = journey
        self._by_customer.setdefault(customer_id, []).append(journey)
        self._last_entry[(campaign.id, customer_id)] = at
        self._line(
            journey, PlanAction.ENTER, at, fields={"holdout": True} if journey.held_out else {}
        )
        self._run(journey, at, event)

    def _exit(
        self, journey: Journey, at: datetime, reason: str, fields: dict[str, Any] | None = None
    ) -> None:
        journey.status = "exited"
        journey.generation += 1
        self.dispatcher.cancel(journey.id, at)
        self._line(journey, PlanAction.EXIT, at, reason=reason, fields=fields or {})
        for audience, step in sorted(journey.audiences.items()):
            self._send(journey, step, "ads", "audience_remove", {"audience": audience}, at)
        journey.audiences.clear()

    # --- running steps -----------------------------------------------------------------------

    def _run(self, journey: Journey, at: datetime, event: Event | None) -> None:
        """Take steps until the journey waits or completes."""
        while journey.status == "active":
            frame = position.current(journey.at)
            step = frame.step
            if step is None:
                journey.status = "completed"
                return
            state = self.customers.state(journey.customer_id)
            scope = names(journey.customer_id, state, event, at)
            if isinstance(step, WaitStep):
                if self._wait(journey, step, at, state):
                    return
            elif isinstance(step, IfStep):
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
                self._send_step(journey, step, frame.path, frame.variant, at, scope)
                journey.at = position.advance(journey.at)

    def _wait(self, journey: Journey, step: WaitStep, at: datetime, state: Any) -> bool:
        spec = step.wait
        if isinstance(spec, WaitForEvent):
            journey.waiting_for = spec
            journey.waiting_since = at
            self._push(at + spec.timeout, "timeout", (journey.id, journey.generation))
            return True
        if isinstance(spec, WaitUntil):
            zone = state.timezone or self.default_timezone
            due = next_local_time(at, spec.until, zone)
        else:
            due = at + spec
        journey.at = position.advance(journey.at)
        self._push(due, "resume", (journey.id, journey.generation))
        return True

    def _update(
        self, journey: Journey, step: UpdateStep, path: str, at: datetime, scope: dict[str, Any]
    ) -> None:
        traits = {key: expr.evaluate(scope) for key, expr in step.update.traits.items()}
        event = Event(
            message_id=f"{journey.id}:{path}",
            type=EventType.IDENTIFY,
            name="",
            timestamp=at,
            channel="campaign",
            traits=traits,
        )
        self.customers.append(journey.customer_id, event)

    def _send_step(
        self,
        journey: Journey,
        step: AnySend,
        path: str,
        variant: str | None,
        at: datetime,
        scope: dict[str, Any],
    ) -> None:
        fields: dict[str, Any] = {}
        action = "send"
        if step.send == "email":
            fields = {"template": step.template, "subject": self._render(step.subject, scope)}
        elif isinstance(step, AdsSend):
            action = "audience_add"
            fields = {"audience": step.audience}
        elif step.send == "call":
            fields = {"list": step.list_, "priority": step.priority or "normal"}
            if step.reason:
                fields["reason"] = step.reason
        else:
            fields = {"url": step.url}
        if variant is not None:
            fields["variant"] = variant
        if journey.held_out:
            self._line(
                journey,
                PlanAction(action),
                at,
                step=path,
                channel=step.send,
                status="skipped",
                reason="holdout",
                fields=fields,
            )
            return
        sent = self._send(journey, path, step.send, action, fields, at)
        if sent and isinstance(step, AdsSend) and step.remove_on_exit:
            journey.audiences[step.audience] = path

    def _render(self, text: str, scope: dict[str, Any]) -> str:
        template = self._subjects.get(text)
        if template is None:
            template = self._subjects[text] = sandbox().from_string(text).render
        return template(**scope)

    def _send(
        self,
        journey: Journey,
        path: str,
        channel: str,
        action: str,
        fields: dict[str, Any],
        at: datetime,
    ) -> bool:
        pending = PendingSend(journey.id, path, channel, action, dict(fields), at)
        return self._deliver(pending, at)

    def _deliver(self, pending: PendingSend, at: datetime) -> bool:
        journey = self._journeys[pending.journey]
        state = self.customers.state(journey.customer_id)
        outcome = self.dispatcher.decide(pending, journey.customer_id, state, at)
        if outcome.defer_until is not None:
            self._push(outcome.defer_until, "send", pending)
            return pending.action == "audience_add"
        self._line(
            journey,
            PlanAction(pending.action),
            at,
            step=pending.step,
            channel=pending.channel,
            status=outcome.status,
            reason=outcome.reason,
            fields=pending.fields,
        )
        return outcome.status == "sent"

    # --- the plan ----------------------------------------------------------------------------

    def _line(
        self,
        journey: Journey,
        action: PlanAction,
        at: datetime,
        *,
        step: str | None = None,
        channel: str | None = None,
        status: str | None = None,
        reason: str | None = None,
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
