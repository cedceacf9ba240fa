"""Loading a few customers' journeys into the engine, and writing back what it decided.

:func:`load` reads, for the given customers, their stored states, open journeys, timers,
campaign memberships and recent sends (for the caps) into a fresh
:class:`~engine.journeys.runtime.JourneyEngine`. :func:`save` writes back, in the caller's
transaction: journeys that changed, the customers' timers, memberships, a row in ``outbox`` for
every send decided (unique by its (journey, step) key, so a replay decides nothing twice) and a
row in ``decisions`` for every decision and refused entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

import sqlalchemy as sa

from engine.double_opt_in import TRANSACTIONAL
from engine.drive.outbox_port import NewOutboxRow, outbox_key
from engine.drive.outbox_status import OutboxStatus
from engine.drive.partitions import bucket_of
from engine.durable.book import CampaignBook
from engine.durable.customers import StoredCustomers
from engine.durable.lineage import BatchLineages
from engine.durable.sql_outbox import outbox_values
from engine.journeys.context import names
from engine.journeys.dispatch import Dispatcher
from engine.journeys.journey import Journey, entry_order
from engine.journeys.outcomes import NOT_ENTERED, JourneyStatus, SendStatus, TimerKind
from engine.journeys.plan import PlanAction, PlanLine, format_time
from engine.journeys.runtime import JourneyEngine, RendersBody
from engine.journeys.snapshot import (
    decode_journey,
    decode_timer_payload,
    encode_journey,
    encode_timer_payload,
    timer_journey,
)
from engine.policies import SendPolicies
from engine.state.codec import state_from_json, state_to_json
from engine.state.profile import CustomerState
from engine.state.reducers import StateReducer
from engine.storage.customer_store import among, survivors_of
from engine.storage.driver_writes import insert_new_rows, insert_rows, update_rows, upsert_rows
from engine.storage.tables import (
    campaign_members,
    customers,
    decisions,
    events,
    journey_inbox,
    journey_timers,
    journeys,
    outbox,
    segment_looks,
)

LATE_EXIT = "exited:"  # how the detail of a row a late exit skipped starts
CHANNEL_ACTIONS = frozenset({PlanAction.SEND, PlanAction.AUDIENCE_ADD, PlanAction.AUDIENCE_REMOVE})

# The extra fields of a decided send, rendered for its channel: (line, journey, state) -> fields
Enrich = Callable[[PlanLine, Journey, CustomerState], Mapping[str, Any]]


@dataclass
class Loaded:
    """An engine holding some customers, and what they held when loaded."""

    engine: JourneyEngine
    customers: StoredCustomers
    customer_ids: set[str]
    # journey id -> (customer, status, encoded state): a journey a merge moved to its survivor
    # is written back with the survivor's id, or the survivor's batches would not find it
    before: dict[str, tuple[str, str, Any]]
    timer_ids: list[int] = field(default_factory=list)
    viewed_apart: set[str] = field(default_factory=set)  # views read from engine_state
    # profiles ingest merged that the engine has not merged yet: their view is kept until it does
    merged_ahead: set[str] = field(default_factory=set)


def load(
    conn: sa.Connection,
    book: CampaignBook,
    customer_ids: Iterable[str],
    *,
    policies: SendPolicies,
    reducer: StateReducer,
    default_timezone: str,
    now: datetime,
    owner_of_event: Mapping[str, str] | None = None,
    merged_by_event: Mapping[str, tuple[str, ...]] | None = None,
    decides_from: datetime | None = None,
    check_body: RendersBody | None = None,
) -> Loaded:
    """A fresh engine with everything the given customers hold (locked on PostgreSQL).

    ``decides_from`` is the earliest time the caller will decide at (its first event, a tick's
    due time; default ``now``); the customers' timers due before it count too. The sends the
    frequency caps may count are read back from there, on the decisions' own clock: a replay
    run long after its events counts what simulate counts."""
    ids = set(customer_ids)
    views, apart = engine_views(conn, ids)
    ahead = merged_views(conn, ids - views.keys())
    views.update(ahead)
    stored = StoredCustomers(
        views,
        owner_of_event or {},
        merged_by_event or {},
        reducer,
        BatchLineages(conn),
    )

    journey_rows: dict[str, Any] = {}
    for where in among(conn, journeys.c.customer_id, ids):
        for row in conn.execute(sa.select(journeys).where(where, journeys.c.settled.is_(False))):
            journey_rows[row.id] = row
    timer_rows: list[Any] = []
    for where in among(conn, journey_timers.c.customer_id, ids):
        timer_rows.extend(conn.execute(sa.select(journey_timers).where(where)))
    known = {row.campaign_id for row in journey_rows.values()} | {
        row.campaign_id for row in timer_rows
    }
    held = book.held(known)
    timer_rows = sorted(
        (row for row in timer_rows if row.campaign_id not in held), key=lambda r: (r.due_at, r.id)
    )
    wanted = {row.journey_id for row in timer_rows} - journey_rows.keys()
    for where in among(conn, journeys.c.id, wanted):
        for row in conn.execute(sa.select(journeys).where(where)):
            journey_rows[row.id] = row

    engine = JourneyEngine(
        book.active,
        stored,
        Dispatcher(policies),
        default_timezone,
        include_drafts=False,
        held=held,
        check_body=check_body,
    )
    engine.decided_states = {}  # the content stored is rendered from the decided-on state
    loaded = Loaded(engine, stored, ids, {}, viewed_apart=apart, merged_ahead=set(ahead))
    decoded = []
    for row in journey_rows.values():
        campaign = book.get(conn, row.campaign_id, row.campaign_version)
        journey = decode_journey(
            row.id, campaign, row.customer_id, row.status, row.entered_at, row.state
        )
        decoded.append((entry_order(journey), journey, row))
    for _order, journey, row in sorted(decoded, key=itemgetter(0)):  # as simulate holds them
        engine.load_journey(journey)
        loaded.before[row.id] = (row.customer_id, row.status, row.state)
    for row in timer_rows:
        kind = TimerKind(row.kind)
        engine.load_timer(row.due_at, kind, decode_timer_payload(kind, row.payload))
        loaded.timer_ids.append(row.id)
    for where in among(conn, campaign_members.c.customer_id, ids):
        for row in conn.execute(sa.select(campaign_members).where(where)):
            engine.load_member(row.campaign_id, row.customer_id, row.last_entry_at, row.in_segment)
    sent: dict[tuple[str, str], list[datetime]] = {}
    history = policies.cap_history
    earliest = min([decides_from or now, *(row.due_at for row in timer_rows)])
    for where in among(conn, outbox.c.customer_id, ids) if history is not None else []:
        query = sa.select(outbox.c.customer_id, outbox.c.channel, outbox.c.decided_at).where(
            where,
            outbox.c.action != PlanAction.AUDIENCE_REMOVE.value,
            # a send decided counts, as in simulate, even if skipped at delivery (consent
            # withdrawn, max_delay); not one a late exit came before (simulate never decided it)
            sa.or_(
                outbox.c.status != OutboxStatus.SKIPPED,
                sa.func.coalesce(outbox.c.detail, "").not_like(f"{LATE_EXIT}%"),
            ),
            outbox.c.campaign_id.not_in(TRANSACTIONAL),  # confirmations count for no cap
            outbox.c.decided_at >= earliest - history,
        )
        for customer_id, channel, at in conn.execute(query):
            sent.setdefault((customer_id, channel), []).append(at)
    for (customer_id, channel), times in sent.items():
        engine.dispatcher.remember(customer_id, channel, times)
    return loaded


def engine_views(
    conn: sa.Connection, customer_ids: Iterable[str]
) -> tuple[dict[str, CustomerState], set[str]]:
    """Each live customer as the engine has seen them: ``engine_state`` while ingest has
    folded events the engine has not taken yet, else the profile itself; and which came from
    ``engine_state``."""
    views: dict[str, CustomerState] = {}
    apart: set[str] = set()
    columns = (customers.c.id, customers.c.engine_state, customers.c.state)
    for where in among(conn, customers.c.id, customer_ids):
        query = sa.select(*columns).where(where, customers.c.merged_into.is_(None))
        for customer_id, seen, state in conn.execute(query):
            if seen is not None:
                apart.add(customer_id)
            views[customer_id] = state_from_json(seen if seen is not None else state)
    return views, apart


def merged_views(conn: sa.Connection, customer_ids: Iterable[str]) -> dict[str, CustomerState]:
    """The engine's view of each of ``customer_ids`` that ingest has merged away: kept in
    ``engine_state`` at the merge (empty for a profile created and merged in one batch)."""
    views: dict[str, CustomerState] = {}
    columns = (customers.c.id, customers.c.engine_state)
    for where in among(conn, customers.c.id, customer_ids):
        query = sa.select(*columns).where(where, customers.c.merged_into.is_not(None))
        for customer_id, seen in conn.execute(query):
            views[customer_id] = state_from_json(seen) if seen is not None else CustomerState()
    return views


def save_views(conn: sa.Connection, loaded: Loaded) -> None:
    """Keep the engine's view of the customers a batch changed or read apart from their
    profile: none (the profile itself) once the engine has taken every logged event of theirs,
    else the view. Call it after the batch's inbox rows are gone."""
    views = loaded.customers.views()
    changed = loaded.customers.changed & views.keys()
    touched = sorted(changed | ((loaded.viewed_apart | loaded.merged_ahead) & views.keys()))
    if not touched and not loaded.merged_ahead:
        return
    waiting: set[str] = loaded.merged_ahead & views.keys()  # not merged by the engine yet
    for where in among(conn, events.c.customer_id, touched):
        query = (
            sa.select(events.c.customer_id)
            .join(journey_inbox, journey_inbox.c.message_id == events.c.message_id)
            .where(where)
            .distinct()
        )
        waiting.update(conn.scalars(query))
    rows = [
        {"id": cid, "engine_state": state_to_json(views[cid]) if cid in waiting else None}
        for cid in touched
        if cid not in waiting or cid in changed  # a view kept and unchanged stays as it is
    ]
    # merged by the engine now: their view has gone into the survivor's
    gone = sorted(loaded.merged_ahead - views.keys())
    rows += [{"id": cid, "engine_state": None} for cid in gone]
    update_rows(conn, customers, rows, ["id"])


def _settled(journey: Journey, now: datetime) -> bool:
    """Whether nothing can change the journey any more (so it need not be loaded again)."""
    if journey.kept_audiences:  # an ads opt-out still takes the customer out of them
        return False
    if journey.status is JourneyStatus.EXITED:
        return True
    if journey.status is not JourneyStatus.COMPLETED or journey.audiences:
        return False
    goal = journey.campaign.goal
    if goal is None:
        return True  # a journey converts at each goal event in its window: only its end ends it
    return goal.within is not None and journey.entered_at + goal.within < now


def save(
    conn: sa.Connection, book: CampaignBook, loaded: Loaded, now: datetime, enrich: Enrich
) -> list[PlanLine]:
    """Write back what the engine decided; returns the plan lines it made."""
    engine = loaded.engine
    by_id = {journey.id: journey for journey in engine.journeys()}
    changed = []
    for journey in by_id.values():
        state = encode_journey(journey)
        # an unchanged journey is not written back, nor settled: a late goal event may still
        # convert it (docs/runtime.md, "Late events"), however long its window is over
        if loaded.before.get(journey.id) == (journey.customer_id, journey.status, state):
            continue
        changed.append(
            {
                "id": journey.id,
                "campaign_id": journey.campaign.id,
                "campaign_version": book.version_for(journey.campaign),
                "customer_id": journey.customer_id,
                "status": journey.status,
                "settled": _settled(journey, now),
                "entered_at": journey.entered_at,
                "state": state,
                "updated_at": now,
            }
        )
    upsert_rows(conn, journeys, changed, ["id"])

    for where in among(conn, journey_timers.c.id, loaded.timer_ids):
        conn.execute(journey_timers.delete().where(where))
    timer_rows: list[Any] = []
    # a profile ingest merged ahead of the engine is worked on in its survivor's batches: its
    # timers and sends are the survivor's partition's (batches.timer_owners)
    owner = survivors_of(conn, loaded.merged_ahead) if loaded.merged_ahead else {}
    for timer in [*engine.timers(), *engine.held_steps]:
        journey = by_id[timer_journey(timer.kind, timer.payload)]
        timer_rows.append(
            {
                "due_at": timer.due,
                "customer_id": journey.customer_id,
                "journey_id": journey.id,
                "campaign_id": journey.campaign.id,
                "kind": timer.kind,
                "payload": encode_timer_payload(timer.kind, timer.payload),
                "bucket": bucket_of(owner.get(journey.customer_id, journey.customer_id)),
            }
        )
    insert_rows(conn, journey_timers, timer_rows)

    members = [
        {"campaign_id": c, "customer_id": cid, "last_entry_at": last, "in_segment": flag}
        for (c, cid), (last, flag) in sorted(engine.members().items())
    ]
    for where in among(conn, campaign_members.c.customer_id, loaded.customer_ids):
        conn.execute(campaign_members.delete().where(where))
    insert_rows(conn, campaign_members, members)

    _save_segment_looks(conn, loaded)

    lines = sorted(engine.plan, key=lambda line: line.sort_key)
    sends = []
    for line in lines:
        if line.action not in CHANNEL_ACTIONS or line.status != SendStatus.SENT:
            continue
        journey = by_id[line.journey]
        assert line.step is not None and line.channel is not None
        decided = (engine.decided_states or {}).get((line.journey, line.step))
        decided_on = decided if decided is not None else engine.customers.state(line.customer.id)
        fields = {**line.fields, **enrich(line, journey, decided_on)}
        sends.append(
            outbox_values(
                NewOutboxRow(
                    key=outbox_key(line.journey, line.step, line.action.value),
                    journey_id=line.journey,
                    step=line.step,
                    campaign_id=line.campaign,
                    customer_id=line.customer.id,
                    channel=line.channel,
                    action=line.action.value,
                    decided_at=line.at,
                    fields=fields,
                ),
                now,
            )
            | {"bucket": bucket_of(owner.get(line.customer.id, line.customer.id))}
        )
    insert_new_rows(conn, outbox, sends)
    _skip_after_exit(conn, lines, {row["key"] for row in sends}, now)
    records = [decision_record(line, now) for line in lines]
    records += [
        {
            "at": refused.at,
            "campaign_id": refused.campaign,
            "journey_id": None,
            "customer_id": refused.customer_id,
            "action": NOT_ENTERED,
            "step": None,
            "channel": None,
            "status": None,
            "reason": refused.reason,
            "fields": {},
            "recorded_at": now,
        }
        for refused in engine.refused
    ]
    insert_rows(conn, decisions, records)
    return lines


def decision_record(line: PlanLine, recorded_at: datetime) -> dict[str, Any]:
    """The ``decisions`` row of a plan line."""
    return {
        "at": line.at,
        "campaign_id": line.campaign,
        "journey_id": line.journey,
        "customer_id": line.customer.id,
        "action": line.action.value,
        "step": line.step,
        "channel": line.channel,
        "status": line.status,
        "reason": line.reason,
        "fields": dict(line.fields),
        "recorded_at": recorded_at,
    }


def _skip_after_exit(
    conn: sa.Connection, lines: list[PlanLine], decided_now: set[str], now: datetime
) -> None:
    """A journey that exited at T in this batch (a late exit event: stamped before a send that
    was decided, but not yet delivered, when it came in) sends nothing decided at or after T:
    ``simulate``, taking the event first, never planned it. Its outbox rows still ``pending``
    are settled ``skipped`` with the reason ``exited``; an audience add so skipped takes its
    removal with it. A row the dispatcher holds is being delivered: too late, left alone. The
    rows of this batch's own sends (``decided_now``, by key) stand: the engine took the exit
    in its place among them, so a send at T decided before the exit came first, as in
    ``simulate``."""
    exits = {line.journey: line for line in lines if line.action is PlanAction.EXIT}
    if not exits:
        return
    rows: list[Any] = []
    for where in among(conn, outbox.c.journey_id, exits):
        query = sa.select(
            outbox.c.id, outbox.c.key, outbox.c.journey_id, outbox.c.action, outbox.c.decided_at
        ).where(where, outbox.c.status == OutboxStatus.PENDING)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows.extend(conn.execute(query))
    remove = PlanAction.AUDIENCE_REMOVE.value
    late = [
        r
        for r in rows
        if r.action != remove
        and r.decided_at >= exits[r.journey_id].at
        and r.key not in decided_now
    ]
    removals = {outbox_key(r.journey_id, r.key.split(":", 1)[1], remove) for r in late}
    late += [r for r in rows if r.key in removals]
    for row in late:
        exit_line = exits[row.journey_id]
        cause = exit_line.fields.get("event") or exit_line.reason
        detail = (
            f"{LATE_EXIT} the journey exited at {format_time(exit_line.at)} ({cause}), "
            "on an event that came in after this was decided"
        )
        conn.execute(
            outbox.update()
            .where(outbox.c.id == row.id)
            .values(status=OutboxStatus.SKIPPED, detail=detail, updated_at=now)
        )


def _save_segment_looks(conn: sa.Connection, loaded: Loaded) -> None:
    """Keep the next segment look booked for each customer checked; a customer merged away
    needs none (the survivor was checked)."""
    gone = set(loaded.customers.survivors())
    looks = [
        {"customer_id": customer_id, "due_at": due, "bucket": bucket_of(customer_id)}
        for customer_id, due in sorted(loaded.engine.segment_looks().items())
        if customer_id not in gone
    ]
    for where in among(conn, segment_looks.c.customer_id, gone):
        conn.execute(segment_looks.delete().where(where))
    upsert_rows(conn, segment_looks, looks, ["customer_id"])


def scope_of(journey: Journey, state: CustomerState, at: datetime) -> dict[str, Any]:
    """What a template of ``journey`` sees at ``at``."""
    return names(journey.customer_id, state, journey.trigger, at)
