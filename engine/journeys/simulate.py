"""``followup simulate``: replay events through the campaigns on a virtual clock.

It starts from an empty state (only the given events count), applies events in timestamp order,
fires every timer due in between, and returns the plan. Nothing is sent, nothing is written.
The same events and campaigns give the same plan, byte for byte. It is the durable engine's
driver (:mod:`engine.drive`) over a store in memory, one pass at the end of the simulated time,
with schedule ticks and segment sweeps booked by :mod:`engine.journeys.virtual_clock`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from operator import attrgetter
from pathlib import Path

from engine.campaigns.schema import Campaign
from engine.config import ProjectConfig
from engine.double_opt_in import signups_held_back, with_confirmation
from engine.drive.driver import Driver, TickSummary
from engine.drive.memory_store import MemoryStore
from engine.events import Event
from engine.gc_pauses import no_full_collections
from engine.journeys.customers import Resolved
from engine.journeys.dispatch import Dispatcher
from engine.journeys.memory_customers import InMemoryCustomers
from engine.journeys.partitioned import PARALLEL_FROM, default_workers, run_forked, split
from engine.journeys.plan import PlanLine
from engine.journeys.runtime import JourneyEngine
from engine.journeys.virtual_clock import VirtualClock
from engine.policies import Policies, SendPolicies
from engine.rendering import BodyCheck, TemplateFault
from engine.state.reducers import StateReducer

DEFAULT_HORIZON = timedelta(days=7)
# Event.order_key and PlanLine.sort_key, read in C: a sort calls its key once per item
EVENT_ORDER = attrgetter("timestamp", "arrival")
PLAN_ORDER = attrgetter("at", "journey", "sequence")


@dataclass(frozen=True)
class Simulation:
    """A simulation's plan, and per campaign what came of its triggers without a plan line:
    trigger events seen, those its ``where:`` refused, and the entries refused by reason
    (``audience``, ``once``, ``cooldown``, ``already_active``)."""

    plan: list[PlanLine]
    triggered: Counter[str] = field(default_factory=Counter)
    where_refused: Counter[str] = field(default_factory=Counter)
    refused: dict[str, Counter[str]] = field(default_factory=dict)
    # per email template, the first reason its body could not render (sends skipped for it)
    render_problems: dict[str, TemplateFault] = field(default_factory=dict)
    # when and for whom each was met: the order they are in
    render_problems_at: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    # the customer of each event of the names ``watch`` asked for (by messageId), and which
    # customer each merged profile went into: for reports
    owners: dict[str, str] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)


def simulate(
    campaigns: Iterable[Campaign],
    events: Iterable[Event],
    config: ProjectConfig,
    until: datetime | None = None,
    templates: Path | None = None,
    workers: int | None = 1,
) -> list[PlanLine]:
    """The plan the campaigns make for ``events``, to ``until`` (default: a week after the last
    event). ``events`` come in the order received: events of one instant apply in that order
    (their ``arrival`` numbers, as :func:`~engine.ingest.jsonl.read_jsonl` gives them, or their
    places here when those do not increase). Duplicate messageIds count once. With
    ``templates``, email bodies are rendered as sends are decided: a body that cannot render
    is a ``render_error`` skip, as a subject that cannot. With ``workers`` over 1, customers
    are split between that many processes (:mod:`engine.journeys.partitioned`), the same plan;
    ``None``: as many as the CPUs and the free memory allow."""
    return simulation(campaigns, events, config, until, templates, workers=workers).plan


def simulation(
    campaigns: Iterable[Campaign],
    events: Iterable[Event],
    config: ProjectConfig,
    until: datetime | None = None,
    templates: Path | None = None,
    watch: frozenset[str] = frozenset(),
    workers: int | None = 1,
) -> Simulation:
    """:func:`simulate`, with what came of each campaign's triggers (for ``--summary``) and
    the customer of each event named in ``watch`` (for ``--report``)."""
    every = list(campaigns)
    with no_full_collections():
        ordered = ordered_events(events, until)
        if not ordered:
            journey_engine(every, config, None)  # a campaign set the engine refuses fails here too
            return Simulation([])
        # every part runs on the whole run's clock: ticks and sweeps from the first event on
        clock = run_clock(ordered, until)

        def run(part: list[Event]) -> Simulation:
            return _simulate(every, part, config, clock, templates, watch)

        if workers == 1 or len(ordered) < PARALLEL_FROM:
            return run(ordered)
        processes = default_workers() if workers is None else workers  # sized once parsed
        if processes < 2:
            return run(ordered)
        return merged(run_forked(run, split(ordered, processes, config.phone_region)))


def _simulate(
    campaigns: list[Campaign],
    ordered: list[Event],
    config: ProjectConfig,
    clock: tuple[datetime, datetime],
    templates: Path | None,
    watch: frozenset[str],
) -> Simulation:
    """The simulation of ``ordered`` (received and sorted, not empty) from ``clock[0]`` to
    ``clock[1]``."""
    owners: dict[str, str] = {}
    merged_into: dict[str, str] = {}

    def record(event: Event, resolved: Resolved) -> None:
        for merged_id in resolved.merged:
            merged_into[merged_id] = resolved.customer_id
        if event.name in watch:
            owners[event.message_id] = resolved.customer_id

    engine, bodies = run_engine(campaigns, ordered, config, clock, templates, record)
    refused: dict[str, Counter[str]] = {}
    for entry in engine.refused:
        refused.setdefault(entry.campaign, Counter())[str(entry.reason)] += 1
    plan = sorted(engine.plan, key=PLAN_ORDER)
    problems_at = (
        dict(sorted(bodies.problems_at.items(), key=_second)) if bodies is not None else {}
    )
    problems = {t: bodies.problems[t] for t in problems_at} if bodies is not None else {}
    return Simulation(
        plan,
        engine.triggered,
        engine.where_refused,
        refused,
        problems,
        problems_at,
        owners,
        merged_into,
    )


def run_engine(
    campaigns: list[Campaign],
    ordered: list[Event],
    config: ProjectConfig,
    clock: tuple[datetime, datetime],
    templates: Path | None,
    record: Callable[[Event, Resolved], None],
) -> tuple[JourneyEngine, BodyCheck | None]:
    """An engine that took ``ordered`` (received and sorted, not empty) from ``clock[0]`` to
    ``clock[1]``, telling ``record`` each event's customer; and the check of its templates."""
    bodies = BodyCheck(templates) if templates is not None else None
    engine = journey_engine(campaigns, config, bodies)
    start, end = clock
    VirtualClock(engine, start)
    engine.watch_resolved(record)
    # one pass of the driver at the end of the simulated time, on the virtual clock
    Driver(MemoryStore(engine, ordered)).run_pass(end, TickSummary())
    return engine, bodies


def ordered_events(events: Iterable[Event], until: datetime | None) -> list[Event]:
    """``events`` as a simulation takes them: received (each messageId once), up to
    ``until``, in event order."""
    return sorted(
        (e for e in received_order(events) if until is None or e.timestamp <= until),
        key=EVENT_ORDER,
    )


def run_clock(ordered: list[Event], until: datetime | None) -> tuple[datetime, datetime]:
    """The simulated time of ``ordered`` (not empty): from the first event to ``until``
    (default: :data:`DEFAULT_HORIZON` after the last)."""
    return (ordered[0].timestamp, until or ordered[-1].timestamp + DEFAULT_HORIZON)


def _second(item: tuple[str, tuple[datetime, str]]) -> tuple[datetime, str]:
    return item[1]


def merged(parts: list[Simulation]) -> Simulation:
    """One simulation of the simulations of disjoint sets of customers over the same clock:
    the plans merged in order, the counts added up; of a template's faults, the one met first
    (in time, then by customer), in that order, as one process keeps them."""
    whole = Simulation(sorted((line for part in parts for line in part.plan), key=PLAN_ORDER))
    problems: dict[str, tuple[tuple[datetime, str], TemplateFault]] = {}
    for part in parts:
        whole.triggered.update(part.triggered)
        whole.where_refused.update(part.where_refused)
        for campaign, reasons in part.refused.items():
            whole.refused.setdefault(campaign, Counter()).update(reasons)
        for template, fault in part.render_problems.items():
            at = part.render_problems_at[template]
            if template not in problems or at < problems[template][0]:
                problems[template] = (at, fault)
        whole.owners.update(part.owners)
        whole.merged_into.update(part.merged_into)
    for template, (at, fault) in sorted(problems.items(), key=lambda item: item[1][0]):
        whole.render_problems[template] = fault
        whole.render_problems_at[template] = at
    return whole


def journey_engine(
    campaigns: Iterable[Campaign], config: ProjectConfig, bodies: BodyCheck | None
) -> JourneyEngine:
    """An engine for every customer of a simulation, with the project's policies and the
    built-in double opt-in campaign when it is on."""
    policies = SendPolicies(
        Policies.model_validate(config.policies), config.timezone, config.phone_region
    )
    reducer = StateReducer(config.phone_region, signups_held_back(config.policies))
    return JourneyEngine(
        with_confirmation(campaigns, config.policies),
        InMemoryCustomers(reducer, config.phone_region),
        Dispatcher(policies),
        config.timezone,
        check_body=bodies,
        prune_finished=True,  # every customer stays loaded; nothing is written back
    )


def received_order(events: Iterable[Event]) -> list[Event]:
    """``events`` without repeated messageIds (the first counts), each with an ``arrival``
    that increases in the order given: as given when they already do, else their places."""
    unique: dict[str, Event] = {}
    increasing = True
    last = 0
    for event in events:
        if event.message_id not in unique:
            unique[event.message_id] = event
            increasing = increasing and event.arrival > last
            last = event.arrival
    if increasing:
        return list(unique.values())
    return [replace(event, arrival=place) for place, event in enumerate(unique.values(), 1)]
