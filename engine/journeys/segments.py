"""The segment-triggered campaigns of a journey engine: who enters when a condition turns true,
and when each customer next needs a look.

A customer enters a segment campaign when its condition is found true and was not at the last
look (a customer kept out by the audience, a cooldown or a running journey tries again at the
next look). Looks come at every event of theirs and on a grid of sweep times; between two
changes of their state only ``now`` moves, so the next sweep at which anything could differ is
searched for (:mod:`engine.journeys.wakeups`) and booked, and the other sweeps skip them.

Most events change nothing a segment condition reads (a page view, for a condition on orders).
For a condition that reads the customer through fixed paths only, and ``now`` only through what
an interval of times follows (:func:`engine.campaigns.read_set.customer_reads`), a look that
entered no one keeps, per campaign, what those paths held (type and ``repr``: ``1`` is not
``True`` to a test), when, the condition's value and the sweep where the search found it turns
(or that it keeps its value for good). At the next look, when the paths hold exactly the same
and the condition kept its value all the time between (:func:`holds_throughout`), that value and
that sweep are taken as they are, without evaluating or searching again: the search from now
would find the same sweep. Two more things are spared at such a look: folding the state, when
the events not folded yet change none of the fields the condition reads
(:meth:`InMemoryCustomers.state_reading`, :meth:`StateReducer.fields_changed`; the same state
object read again reads the same), and checking that the value held since the last look, up to
the time it was once found to hold until (``steady``: up to where a comparison in it turns, or
the sweep of its turn). Entering, and what keeps a customer out, are decided as ever. Only
plain data is compared (not an iterator an ``update`` step stored, nor an object shown by its
address). ``tests/journeys/test_segment_looks_remembered.py`` holds plans with and without to
be the same. One difference remains, in counts only: a condition whose search runs out of
probes (:data:`~engine.journeys.wakeups.SEARCH_BUDGET`) books an early look that depends on
where the search starts, so a customer kept out may be counted refused at one look more or
fewer.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.campaigns.expressions import Expression
from engine.campaigns.intervals import holds_throughout
from engine.campaigns.read_set import customer_reads
from engine.campaigns.schema import Campaign, SegmentTrigger
from engine.journeys.context import CustomerView, names
from engine.journeys.schedule import SWEEP_RANK
from engine.journeys.wakeups import Probe, SweepGrid
from engine.state.profile import TRAIT_PROPERTIES, CustomerState
from engine.state.reducers import STATE_FIELDS

if TYPE_CHECKING:
    from engine.journeys.runtime import JourneyEngine


@dataclass(slots=True)
class _Look:
    """A campaign's condition at the last look at a customer that entered no one: the values
    of the paths it reads, when, its value, and the sweep where it first turns after, when the
    search found it within its horizon telling every sweep before, or :data:`NEVER` (``None``:
    search again). ``state`` is the state read (the same object reads the same again);
    ``steady`` the time up to which the value is known to hold, once worked out (the sweep
    before the turn, when it holds all the way there; else ``at``)."""

    reads: tuple[Any, ...]
    at: datetime
    inside: bool
    turn: int | None
    state: CustomerState
    steady: datetime | None = None


_INSTANT = timedelta(microseconds=1)  # the smallest step of a time
NEVER = -1  # a recalled condition that keeps its value for good: no turn to search for
FOREVER = datetime(9000, 1, 1, tzinfo=UTC)  # as far as "for good" is looked
REMEMBER_LOOKS = True  # remember looks (tests compare with every look made in full)


def _value(state: CustomerState, path: tuple[str, ...]) -> Any:
    """What ``customer.<path>`` reads of ``state``, or more: the whole traits for any trait
    (the view finds a trait by more than one spelling of its key)."""
    first, *rest = path
    if first == "traits":
        return state.traits
    if first == "id":
        return None  # the customer's, the same at every look
    value = getattr(state, first)
    for part in rest:
        value = value[part] if isinstance(value, Mapping) else getattr(value, part)
    return value


_SCALARS = (type(None), bool, int, float, str, datetime, date, timedelta)


def _plain(value: Any) -> bool:
    """Whether ``value`` is data all the way down (scalars, lists, tuples, sets and mappings
    of them, the state's frozen dataclasses): what its ``repr`` shows is all it holds. Not an
    iterator an ``update`` step stored, nor an object shown by its address."""
    if isinstance(value, _SCALARS):
        return True
    if isinstance(value, Mapping):
        return all(_plain(key) and _plain(item) for key, item in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return all(_plain(item) for item in value)
    if is_dataclass(value) and not isinstance(value, type):
        frozen = getattr(value, "__dataclass_params__", None)
        return bool(frozen and frozen.frozen) and all(
            _plain(getattr(value, f.name)) for f in fields(value)
        )
    return False


def _exactly(value: Any) -> tuple[type, str]:
    """``value`` as a condition can tell it from another: its type and its ``repr`` (which
    tells ``1`` from ``True`` and ``1.0``, ``0.0`` from ``-0.0``, a key order, a time zone;
    ``==`` does not). Two values alike here read alike; different ones only mean a full look.
    A value that is not plain data (:func:`_plain`) cannot be recalled."""
    if not _plain(value):
        raise ValueError("not plain data")
    return type(value), repr(value)


class SegmentTriggers:
    """The segment campaigns among ``engine``'s, and their members' last values."""

    def __init__(self, engine: JourneyEngine, campaigns: Iterable[Campaign]) -> None:
        # a weak reference: held strongly, the engine and this made a cycle, and a durable
        # batch's whole engine (journeys, states, plan) was left to the cyclic collector,
        # whose full collections then walked the heap (a fifth of a pass)
        self.engine: JourneyEngine = weakref.proxy(engine)
        self.campaigns = [c for c in campaigns if isinstance(c.trigger, SegmentTrigger)]
        self._by_id = [(c.id, c) for c in self.campaigns]  # (``id`` is a property: once)
        # (campaign, customer) -> the condition held at the last look and the customer entered
        self.was: dict[tuple[str, str], bool] = {}
        self._grid: SweepGrid | None = None  # the looks booked: who, at which sweep
        # the last check per customer, to search from when saved (the durable runtime)
        self._turns_later: dict[str, tuple[datetime, dict[str, bool]]] | None = None
        # the durable runtime: the hourly sweeps, and the time of the decision, by which a look
        # a check finds is swept in the decision itself (sweep_due_by); the sweeps booked
        self._due_by: tuple[SweepGrid, datetime] | None = None
        self._swept: set[tuple[datetime, str]] = set()
        # the durable runtime: the time of a look at everyone this decision takes, which takes
        # the hourly sweeps by then in its stead (looks_at_everyone)
        self._everyone_at: datetime | None = None
        # campaign -> the fixed paths its condition reads (``None``: it reads more, not kept)
        self._reads: dict[str, tuple[tuple[str, ...], ...] | None] = {
            c.id: customer_reads(c.trigger.segment.source) if REMEMBER_LOOKS else None
            for c in self.campaigns
            if isinstance(c.trigger, SegmentTrigger)  # (all are: for the type checker)
        }
        self._looked: dict[tuple[str, str], _Look] = {}  # (campaign, customer) -> last look
        # campaign -> the fields of the state its condition reads (``None``: it reads more): a
        # look needs only these current, not the rest of the state folded
        self._fields = {cid: _fields_read(paths) for cid, paths in self._reads.items()}

    def book_looks(self, grid: SweepGrid, search_when_saved: bool) -> None:
        """Book on ``grid`` each customer's next look whenever they are checked (see
        :meth:`JourneyEngine.book_segment_looks`)."""
        if self.campaigns:
            self._grid = grid
            self._turns_later = {} if search_when_saved else None

    def sweep_due_by(self, sweeps: SweepGrid, now: datetime) -> None:
        """(The durable runtime, whose looks wait for the save.) Sweep at its hour of
        ``sweeps``, in this decision, each look a check finds due by ``now``: a pass takes
        events after its own sweeps, and a look such an event books (or one between two events
        of the customer) falls to an hour that has come, where ``simulate`` sweeps it."""
        if self.campaigns:
            self._due_by = (sweeps, now)

    def looks_at_everyone(self, at: datetime) -> None:
        """(The durable runtime.) This decision is the sweep over everyone that the segment
        campaigns, new or changed, began at ``at``: its look takes the hourly sweeps by ``at``
        (those of a first pass's backlog of old events, or of hours before a version of the
        campaigns was deployed), which are not taken apart."""
        self._everyone_at = at

    def sweep_at(self, at: datetime, customer_id: str) -> None:
        """Look at ``customer_id``'s segments at ``at`` (a sweep; after the ticks of that
        instant), once."""
        if (at, customer_id) in self._swept:
            return
        self._swept.add((at, customer_id))
        engine = self.engine

        def sweep(when: datetime) -> None:
            if self._everyone_at is None or when > self._everyone_at:
                engine.sweep_segments(when, [customer_id])

        engine.call_at(at, sweep, SWEEP_RANK)

    def sweep(self, at: datetime, customer_ids: Iterable[str]) -> None:
        """A sweep at ``at``: each customer's looks booked by then are taken (as a sweep of
        ``simulate``'s grid takes them), and those still live are looked at."""
        grid, has = self._grid, self.engine.customers.has
        for customer_id in customer_ids:
            if grid is not None:
                grid.take_until(customer_id, at)
            if has(customer_id):
                self.check(customer_id, at)

    def looks(self) -> dict[str, datetime]:
        """The next look booked for each customer checked (nothing when no grid is kept)."""
        if self._grid is None:
            return {}
        for customer_id, (at, inside) in (self._turns_later or {}).items():
            if self.engine.customers.has(customer_id):  # not merged away since
                self._grid.book(customer_id, self._turn_look(customer_id, at, inside))
        self._turns_later = {}
        return self._grid.bookings()

    def look_soon(self, customer_id: str, at: datetime) -> None:
        """Look at the customer at the next sweep after ``at`` (their state changed without an
        event, and was looked at once at this instant already)."""
        if self._grid is not None:
            self._grid.book(customer_id, self._grid.index_after(at))
            if (come := self._sweeps_come(at)) is not None:  # in this decision: it has come
                self.sweep_at(come.time(come.index_after(at)), customer_id)

    def merge(self, merged_id: str, survivor_id: str) -> None:
        """A merged profile's segment values go to the survivor (true if either was)."""
        for campaign in self.campaigns:
            self._looked.pop((campaign.id, merged_id), None)
            self._looked.pop((campaign.id, survivor_id), None)
            if self.was.pop((campaign.id, merged_id), False):
                self.was[(campaign.id, survivor_id)] = True

    def check(self, customer_id: str, at: datetime) -> None:
        """Look at the customer's segment conditions at ``at``: enter those turned true."""
        inside: dict[str, bool] = {}
        reads: dict[str, tuple[Any, ...] | None] = {}
        turns: dict[str, int | None] = {}  # the sweeps where a condition turns, as recalled
        recalled: dict[str, _Look] = {}
        states: dict[str, CustomerState] = {}
        tried = False
        for cid, campaign in self._by_id:
            trigger = campaign.trigger
            assert isinstance(trigger, SegmentTrigger)
            state = states[cid] = self._condition_state(customer_id, cid)
            key = (cid, customer_id)
            look = self._looked.get(key)
            read: tuple[Any, ...] | None
            if look is not None and look.state is state:
                read = look.reads  # the very state read at the last look
            else:
                read = self._read(cid, state)
            reads[cid] = read
            look = self._recall(trigger, look, read, at, customer_id, state)
            if look is not None:
                recalled[cid] = look
                now_true = inside[cid] = look.inside
                turns[cid] = look.turn
            else:
                scope = names(customer_id, state, None, at)
                now_true = inside[cid] = trigger.segment.holds(scope)
            if not now_true:
                self.was[key] = False
            elif not self.was.get(key, False):
                # true only once entered: a customer kept out (audience, cooldown) tries again
                self.was[key] = self.engine.try_enter(campaign, customer_id, at, None)
                tried = True
        if self._grid is not None:
            turns = self._book_next_look(customer_id, at, inside, turns)
        for cid, _campaign in self._by_id:
            key = (cid, customer_id)
            kept = reads[cid]
            if kept is None or tried:  # an entry may have changed what they read
                self._looked.pop(key, None)
                continue
            turn = turns.get(cid)
            before = recalled.get(cid)
            if before is not None and before.turn == turn:  # the same look, taken now
                before.reads, before.at, before.state = kept, at, states[cid]
            else:
                self._looked[key] = _Look(kept, at, inside[cid], turn, states[cid])

    def _condition_state(self, customer_id: str, campaign_id: str) -> CustomerState:
        """A state of the customer holding now what the campaign's condition reads of it."""
        customers = self.engine.customers
        fields = self._fields.get(campaign_id)
        if fields is None:
            return customers.state(customer_id)
        return customers.state_reading(customer_id, fields)

    def _read(self, campaign_id: str, state: CustomerState) -> tuple[Any, ...] | None:
        """What the campaign's condition reads of ``state`` (``None``: not kept)."""
        paths = self._reads.get(campaign_id)
        if paths is None:
            return None
        try:
            return tuple(_exactly(_value(state, path)) for path in paths)
        except Exception:  # noqa: BLE001 - a value that cannot be read: look in full
            return None

    def _recall(
        self,
        trigger: SegmentTrigger,
        look: _Look | None,
        read: tuple[Any, ...] | None,
        at: datetime,
        customer_id: str,
        state: CustomerState,
    ) -> _Look | None:
        """The last look at this condition, when it still holds at ``at``: the paths read the
        same, and the condition kept its value all along since (only ``now`` moved)."""
        if look is None or read is None or look.reads != read or at < look.at:
            return None
        if look.turn == NEVER:  # found to keep its value for good when last searched
            return look
        if look.steady is None:
            look.steady = self._steady_until(trigger, look, customer_id, state)
        if at <= look.steady:
            return look
        scope = names(customer_id, state, None, at)
        if holds_throughout(trigger.segment, scope, look.at, at) is not look.inside:
            return None
        return look

    def _steady_until(
        self, trigger: SegmentTrigger, look: _Look, customer_id: str, state: CustomerState
    ) -> datetime:
        """The time up to which ``look``'s condition keeps its value, so that the next looks
        up to then need no evaluation at all: up to the sweep where it turns when it holds all
        the way there, else up to where a comparison in it turns (``last_at < now - days(90)``
        turns between two sweeps) when it holds until then; else the look's own time."""
        grid = self._grid
        if grid is None or look.turn is None:
            return look.at
        scope = names(customer_id, state, None, look.at)
        end = grid.time(look.turn) - _INSTANT
        for _ in range(2):  # the sweep before the turn, then the comparison's turn
            if end <= look.at:
                break
            seen = holds_throughout(trigger.segment, scope, look.at, end)
            if seen is look.inside:
                return end
            if not isinstance(seen, datetime):
                break
            end = min(end, seen - _INSTANT)
        return look.at

    def _book_next_look(
        self, customer_id: str, at: datetime, inside: dict[str, bool], known: dict[str, int | None]
    ) -> dict[str, int | None]:
        """Book the first sweep after ``at`` at which a segment campaign could decide something
        else for the customer: its condition turns (``inside``: its value at ``at``, by
        campaign; ``known``: where a recalled one turns, when that was found), or what keeps
        them out ends. A state an entry's ``update`` step changed only brings the look forward
        (the condition differs at once), and the update books the next sweep anyway. Returns,
        by campaign, the sweep where its condition turns when the search found it (to recall)."""
        grid = self._grid
        assert grid is not None
        looks = self._kept_out_looks(customer_id, at, inside)
        if self._turns_later is not None:  # the durable runtime: the search waits for the save
            self._turns_later[customer_id] = (at, inside)
            if looks:
                grid.book(customer_id, min(looks))
            if self._due_by is not None:
                self._sweep_if_due(customer_id, at, inside, [grid.time(i) for i in looks])
            return {}
        found: dict[str, int | None] = {}
        end = grid.index_after(at) + grid.horizon  # a search that finds no turn answers this
        for cid, campaign in self._by_id:
            trigger = campaign.trigger
            assert isinstance(trigger, SegmentTrigger)
            turn = known.get(cid)
            if turn is None:
                scope = self._condition_scope(customer_id, cid)
                value = inside[cid]
                index, told = grid.search(_probe(trigger.segment, scope), value, at)
                if told and index < end:
                    turn = index
                elif told and holds_throughout(trigger.segment, scope, at, FOREVER) is value:
                    turn = NEVER  # whenever it is searched from, it answers the horizon's end
                looks.append(index)
            else:  # the search from now finds it again
                looks.append(end if turn == NEVER else turn)
            found[cid] = turn
        grid.book(customer_id, min(looks))
        return found

    def _sweep_if_due(
        self, customer_id: str, at: datetime, inside: dict[str, bool], kept_out: list[datetime]
    ) -> None:
        """Book the first sweep after ``at`` and by the decision's time at which a condition
        turns or what keeps the customer out may end (``kept_out``), if there is one: the
        search of the save, over the sweeps that have come only."""
        come = self._sweeps_come(at)
        if come is None:
            return
        last = come.index_after(at) + come.horizon - 1
        found = [come.index_after(moment - _INSTANT) for moment in kept_out]
        for cid, campaign in self._by_id:
            trigger = campaign.trigger
            assert isinstance(trigger, SegmentTrigger)
            scope = self._condition_scope(customer_id, cid)
            found.append(come.first_change(_probe(trigger.segment, scope), inside[cid], at))
        turn = min(found)
        if turn <= last:
            self.sweep_at(come.time(turn), customer_id)

    def _sweeps_come(self, at: datetime) -> SweepGrid | None:
        """(The durable runtime, :meth:`sweep_due_by`.) The hourly sweeps after ``at`` that
        have come by the decision's time, as a grid searched that far (``None``: none has, or
        not the durable runtime)."""
        if self._due_by is None:
            return None
        sweeps, now = self._due_by
        first, last = sweeps.index_after(at), sweeps.index_after(now) - 1
        if first > last:
            return None
        return SweepGrid(sweeps.origin, sweeps.step, horizon=last - first + 1)

    def _turn_look(self, customer_id: str, at: datetime, inside: dict[str, bool]) -> int:
        """The first sweep after ``at`` at which a segment condition is no longer as
        ``inside`` says, the customer's state standing as it is."""
        grid = self._grid
        assert grid is not None
        scope = self._scope(customer_id)
        looks = []
        for campaign in self.campaigns:
            trigger = campaign.trigger
            assert isinstance(trigger, SegmentTrigger)
            looks.append(grid.first_change(_probe(trigger.segment, scope), inside[campaign.id], at))
        return min(looks)

    def _kept_out_looks(self, customer_id: str, at: datetime, inside: dict[str, bool]) -> list[int]:
        """For each segment campaign whose condition holds at ``at`` but that kept the customer
        out, the sweeps at which what keeps them out may end."""
        grid = self._grid
        assert grid is not None
        looks: list[int] = []
        for cid, campaign in self._by_id:
            key = (cid, customer_id)
            if not inside[cid] or self.was.get(key, False):
                continue
            audience = campaign.audience
            if audience is not None:
                scope = self._scope(customer_id)
                if not audience.holds({**scope, "now": at}):
                    looks.append(grid.first_change(_probe(audience, scope), False, at))
            last, cooldown = (
                self.engine.last_entry(cid, customer_id),
                campaign.entry.cooldown,
            )
            if last is not None and cooldown and not campaign.entry.once and at - last < cooldown:
                looks.append(grid.index_after(last + cooldown - timedelta(microseconds=1)))
            if self.engine.running(customer_id, cid):
                looks.append(grid.index_after(at))
        return looks

    def _scope(self, customer_id: str) -> dict[str, Any]:
        state = self.engine.customers.state(customer_id)
        return {"customer": CustomerView(customer_id, state), "event": None}

    def _condition_scope(self, customer_id: str, campaign_id: str) -> dict[str, Any]:
        """:meth:`_scope` for the campaign's condition alone (see :meth:`_condition_state`)."""
        state = self._condition_state(customer_id, campaign_id)
        return {"customer": CustomerView(customer_id, state), "event": None}


def _fields_read(paths: tuple[tuple[str, ...], ...] | None) -> frozenset[str] | None:
    """The fields of :class:`CustomerState` a condition reading ``paths`` reads (a property
    such as ``email`` reads the traits); ``None`` when it reads more, or a name that is
    neither, or none at all. A condition on ``now`` alone still has the state folded at each
    look, as before: left for later, an ``update`` step's traits and a same-second event's
    would fold in one run, in event order, and the traits' keys could come out in another
    order than event by event (``customer.traits|list`` in a later condition or template)."""
    if paths is None:
        return None
    found: set[str] = set()
    for first, *_rest in paths:
        if first == "id":
            continue  # the customer's id: the same at every look
        if first in TRAIT_PROPERTIES:
            found.add("traits")
        elif first in STATE_FIELDS:
            found.add(first)
        else:
            return None
    return frozenset(found) or None


def _probe(condition: Expression, scope: Mapping[str, Any]) -> Probe:
    """``condition`` over stretches of time, for a customer whose state stands still."""
    return lambda start, end: holds_throughout(condition, scope, start, end)
