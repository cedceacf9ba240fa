"""``explain``'s reads over a simulation (:class:`engine.drive.explanation.ExplainReads`): the
memory store's one engine, once the driver's pass has run, holds every decision (its plan and
the entries it refused), every journey with its timers, and every customer with their events.
Nothing is delivered in a simulation: no channel action has an outcome.

Decisions of one instant come in plan order, refused entries after them; the tables keep them in
the order passes wrote them, which is the same within one pass (a late event's pass can write a
decision of an earlier instant after another pass's refusal of it)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from engine.campaigns.loader import campaign_version
from engine.drive.explanation import MAX_MERGE_DEPTH, Decision, JourneyState, Outcome
from engine.journeys.journey import Journey
from engine.journeys.memory_customers import InMemoryCustomers
from engine.journeys.outcomes import NOT_ENTERED, TimerKind
from engine.journeys.runtime import JourneyEngine
from engine.journeys.snapshot import timer_journey


class MemoryExplainReads:
    """What a simulation's ``engine`` tells ``explain``; ``merged_into`` maps each profile
    merged away to the profile it went into."""

    def __init__(self, engine: JourneyEngine, merged_into: Mapping[str, str]) -> None:
        self.engine = engine
        self._merged_into = merged_into

    def merged_into(self, customer_id: str) -> tuple[str, ...]:
        """Every profile merged into ``customer_id``, directly or not, sorted."""
        found = []
        for merged_id in self._merged_into:
            into: str | None = merged_id
            for _ in range(MAX_MERGE_DEPTH):  # chains are short; the bound guards against a cycle
                into = self._merged_into.get(into) if into is not None else None
                if into is None or into == customer_id:
                    break
            if into == customer_id:
                found.append(merged_id)
        return tuple(sorted(found))

    def decisions(self, customer_ids: Collection[str], campaign_id: str | None) -> list[Decision]:
        """The plan lines and refused entries of the customers, in time order (as decided)."""
        ids = set(customer_ids)
        wanted = [
            line
            for line in sorted(self.engine.plan, key=lambda line: line.sort_key)
            if line.customer.id in ids and campaign_id in (None, line.campaign)
        ]
        found = [
            (
                line.at,
                Decision(
                    at=line.at,
                    campaign_id=line.campaign,
                    journey_id=line.journey,
                    customer_id=line.customer.id,
                    action=line.action.value,
                    step=line.step,
                    channel=line.channel,
                    status=line.status,
                    reason=line.reason,
                    fields=dict(line.fields),
                    outcome=None,
                ),
            )
            for line in wanted
        ]
        found += [
            (
                refused.at,
                Decision(
                    at=refused.at,
                    campaign_id=refused.campaign,
                    journey_id=None,
                    customer_id=refused.customer_id,
                    action=NOT_ENTERED,
                    step=None,
                    channel=None,
                    status=None,
                    reason=refused.reason,
                    fields={},
                    outcome=None,
                ),
            )
            for refused in self.engine.refused
            if refused.customer_id in ids and campaign_id in (None, refused.campaign)
        ]
        found.sort(key=lambda pair: pair[0])  # stable: each kind keeps the order decided
        return [decision for _, decision in found]

    def outcomes(self, keys: Sequence[str]) -> dict[str, Outcome]:
        """None: a simulation delivers nothing."""
        return {}

    def journeys(
        self, customer_ids: Collection[str], campaign_id: str | None
    ) -> list[JourneyState]:
        """The customers' journeys with their next timers, in entry order; a journey was last
        changed by its last decision."""
        ids = set(customer_ids)
        engine = self.engine
        mine = [
            journey
            for journey in engine.journeys()
            if journey.customer_id in ids and campaign_id in (None, journey.campaign.id)
        ]
        held = {journey.id for journey in mine}
        next_due: dict[str, datetime] = {}
        for timer in [*engine.timers(), *engine.held_steps]:
            if timer.kind is TimerKind.CALL:  # the virtual clock's ticks and sweeps
                continue
            journey_id = timer_journey(timer.kind, timer.payload)
            if journey_id in held and (
                journey_id not in next_due or timer.due < next_due[journey_id]
            ):
                next_due[journey_id] = timer.due
        last: dict[str, datetime] = {}
        for line in engine.plan:
            if line.journey in held:
                last[line.journey] = max(line.at, last.get(line.journey, line.at))
        return [
            _state(journey, last.get(journey.id, journey.entered_at), next_due.get(journey.id))
            for journey in sorted(mine, key=lambda j: (j.entered_at, j.id))
        ]

    def events(self, customer_ids: Collection[str]) -> tuple[dict[str, int], int]:
        """The customers' events by name (else by type); the simulation took every one."""
        customers = self.engine.customers
        assert isinstance(customers, InMemoryCustomers)
        by_name: dict[str, int] = {}
        for customer_id in customer_ids:
            for event in customers.history(customer_id):
                label = event.name or event.type.value
                by_name[label] = by_name.get(label, 0) + 1
        return by_name, 0


def _state(journey: Journey, updated_at: datetime, next_due: datetime | None) -> JourneyState:
    return JourneyState(
        id=journey.id,
        campaign_id=journey.campaign.id,
        version=campaign_version(journey.campaign),
        status=journey.status.value,
        entered_at=journey.entered_at,
        updated_at=updated_at,
        next_due_at=next_due,
    )
