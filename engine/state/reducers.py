"""Small pure reducers: ``(state, event) -> state`` for each part of the unified profile.

Each reducer looks at one concern (seen, traits, consent, cart, orders) and returns the state
unchanged when the event is not for it. :class:`StateReducer` indexes them by event, so an event
costs only the reducers that care, and folds events in event-time order.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from engine.consent_values import (
    CONSENT_CHANNELS,
    CONSENT_EVENTS,
    consent_channel,
    consent_flag,
    event_channel,
)
from engine.contact import normalize_email, normalize_phone
from engine.events import Event, EventType, OrderKey
from engine.state.cart import NeedsHistory, cart_after
from engine.state.orders import orders_after
from engine.state.profile import Consent, CustomerState
from engine.state.values import replace

Reducer = Callable[[CustomerState, Event], CustomerState]
PartReducer = Callable[[Any, Event], Any]


def _with_part(state: CustomerState, name: str, part: Any) -> CustomerState:
    """``state`` with its part ``name`` (consent, cart, orders) set to ``part``: ``state``
    itself when the part is unchanged."""
    return state if part is getattr(state, name) else replace(state, **{name: part})


_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


@lru_cache(maxsize=1024)
def snake_case(key: str) -> str:
    """``firstName`` -> ``first_name``: Segment allows reserved traits in either form."""
    return _CAMEL.sub(r"_\1", key).lower()


@lru_cache(maxsize=1024)
def valid_timezone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@lru_cache(maxsize=1024)
def canonical_timezone(name: str) -> str | None:
    """The IANA time zone ``name`` means, as IANA spells it: ``Europe/Paris`` for
    `` europe/paris`` (a form or a CSV export's case); ``None`` for no zone."""
    if valid_timezone(name):
        return name
    return _zones_by_lower_case().get(name.strip().lower())


@lru_cache(maxsize=1)
def _zones_by_lower_case() -> dict[str, str]:
    return {zone.lower(): zone for zone in available_timezones()}


def _timezone(traits: Mapping[str, Any], from_context: str | None) -> str | None:
    """The customer's time zone: the traits' when it is one, else the latest context gave."""
    zone = traits.get("timezone")
    found = canonical_timezone(zone) if isinstance(zone, str) else None
    return found if found is not None else from_context


def _locale(traits: Mapping[str, Any], from_context: str | None) -> str | None:
    """The customer's locale: the traits', else the latest context gave."""
    locale = traits.get("locale")
    return locale if isinstance(locale, str) else from_context


# --- seen: first/last seen, channels, user id, time zone and locale from context -------------


_NO_PARTS: Mapping[str, Any] = {}


def reduce_seen(state: CustomerState, event: Event) -> CustomerState:
    """Times seen, channels seen, the latest userId, and context time zone and locale."""
    return reduce_seen_run(state, (event,))


def reduce_seen_run(
    state: CustomerState, events: Sequence[Event], parts: Mapping[str, Any] = _NO_PARTS
) -> CustomerState:
    """:func:`reduce_seen` over ``events`` (at least one, in event order, each later than
    every event the state holds) that no other reducer concerns: the same state as applying
    them one by one, built once. Most events (product views, pages without traits) only change
    what this reducer keeps. ``parts``: the consent, cart or orders that the events' own
    reducers made (see ``StateReducer._part_of``).

    Since the run is in event order, its ends are its first and last times, and what the
    latest event of the run sets stands: the user id, time zone and locale are looked for from
    the end back, and most runs end with an event that names all three."""
    first, last = state.first_seen_at, state.last_seen_at
    head, tail = events[0].timestamp, events[-1].timestamp
    if first is None or head < first:
        first = head
    if last is None or tail > last:
        last = tail
    channels = state.channels
    seen = {event.channel for event in events}
    if not channels.issuperset(seen):
        channels = channels | seen
    user_id, user_id_event = state.user_id, None
    context_zone, context_locale = state.context_timezone, state.context_locale
    zone_event = locale_event = None
    for event in reversed(events):
        if user_id_event is None and event.user_id:
            user_id, user_id_event = event.user_id, event
        context = event.context
        if context:
            if zone_event is None:
                zone = context.get("timezone")
                # a zone already kept needs no check again
                if isinstance(zone, str) and (zone == context_zone or valid_timezone(zone)):
                    context_zone, zone_event = zone, event
            if locale_event is None:
                locale = context.get("locale")
                if isinstance(locale, str):
                    context_locale, locale_event = locale, event
        if user_id_event is not None and zone_event is not None and locale_event is not None:
            break
    context_at = state.context_at
    if zone_event is not None or locale_event is not None:
        context_at = dict(context_at)
        if zone_event is not None:
            context_at["timezone"] = zone_event.order_key
        if locale_event is not None:
            context_at["locale"] = locale_event.order_key
        context_at = dict(sorted(context_at.items()))  # one order, however folded
    traits = state.traits
    return CustomerState(
        user_id=user_id,
        traits=traits,
        consent=parts.get("consent", state.consent),
        cart=parts.get("cart", state.cart),
        orders=parts.get("orders", state.orders),
        channels=channels,
        first_seen_at=first,
        last_seen_at=last,
        timezone=_timezone(traits, context_zone) if zone_event else state.timezone,
        locale=_locale(traits, context_locale) if locale_event else state.locale,
        event_count=state.event_count + len(events),
        watermark=events[-1].order_key,
        user_id_at=user_id_event.order_key if user_id_event is not None else state.user_id_at,
        traits_at=state.traits_at,
        context_timezone=context_zone,
        context_locale=context_locale,
        context_at=context_at,
        legacy=state.legacy,
    )


def _later(kept: Mapping[str, OrderKey], name: str, key: OrderKey) -> bool:
    """Whether an event at ``key`` is at least as late as what set ``name`` (the same event may
    set a name twice: its last word stands)."""
    at = kept.get(name)
    return at is None or at <= key


def reduce_seen_late(state: CustomerState, event: Event) -> CustomerState:
    """:func:`reduce_seen` for an event older than the state's watermark: each value it would
    set stands only if it is later than what set it so far."""
    key = event.order_key
    timestamp = event.timestamp
    first, last = state.first_seen_at, state.last_seen_at
    user_id, user_id_at = state.user_id, state.user_id_at
    if event.user_id and (user_id_at is None or key > user_id_at):
        user_id, user_id_at = event.user_id, key
    context_zone, context_locale = state.context_timezone, state.context_locale
    context_at = state.context_at
    context = event.context
    if context:
        zone = context.get("timezone")
        locale = context.get("locale")
        context_at = dict(context_at)
        if isinstance(zone, str) and valid_timezone(zone) and _later(context_at, "timezone", key):
            context_zone = zone
            context_at["timezone"] = key
        if isinstance(locale, str) and _later(context_at, "locale", key):
            context_locale = locale
            context_at["locale"] = key
        context_at = dict(sorted(context_at.items()))
    return replace(
        state,
        user_id=user_id,
        user_id_at=user_id_at,
        first_seen_at=timestamp if first is None or timestamp < first else first,
        last_seen_at=timestamp if last is None or timestamp > last else last,
        channels=state.channels | {event.channel},
        timezone=_timezone(state.traits, context_zone),
        locale=_locale(state.traits, context_locale),
        context_timezone=context_zone,
        context_locale=context_locale,
        context_at=context_at,
        event_count=state.event_count + 1,
    )


# --- traits ---------------------------------------------------------------------------------


def make_traits_reducer(phone_region: str) -> Reducer:
    """The traits reducer, normalising phones with ``phone_region`` for national numbers."""

    def reduce_traits(state: CustomerState, event: Event) -> CustomerState:
        """Merge the event's traits (identify, or any call's ``context.traits``): per trait,
        the latest in event order wins, wherever the event falls."""
        if not event.traits:
            return state
        key = event.order_key
        traits = dict(state.traits)
        traits_at = dict(state.traits_at)
        for name, value in event.traits.items():
            if name == "consent":
                continue
            name = snake_case(name)
            if not _later(traits_at, name, key):
                continue  # a later event set it
            if name == "email":
                value = normalize_email(value) or value
            elif name == "phone":
                value = normalize_phone(value, phone_region) or value
            traits[name] = value
            traits_at[name] = key
        return replace(
            state,
            # in the order of their names: the same whichever events were folded together and
            # whichever came late (a condition or template may list them)
            traits=dict(sorted(traits.items())),
            traits_at=dict(sorted(traits_at.items())),
            timezone=_timezone(traits, state.context_timezone),
            locale=_locale(traits, state.context_locale),
        )

    return reduce_traits


# --- consent --------------------------------------------------------------------------------


# A ``Subscribed`` this holds back waits for its confirmation (policies.double_opt_in): it grants
# no consent until a ``Subscription Confirmed`` for the channel does. Given the signup's channel.
HoldsBack = Callable[[str, Event], bool]


def consent_changes(event: Event, holds_back: HoldsBack | None = None) -> dict[str, bool]:
    """The consent an event sets, by channel: ``Subscribed`` grants and ``Unsubscribed``
    withdraws it for ``properties.channel`` (email when absent), as does an identify's
    ``traits.consent``. Under double opt-in (``holds_back`` given) a signup it holds back sets
    nothing, and a ``Subscription Confirmed`` of such a signup (its channel and list) grants."""
    changes: dict[str, bool] = {}
    if event.type is EventType.TRACK and event.name in CONSENT_EVENTS:
        channel = event_channel(event.properties.get("channel"))
        if channel is not None:
            if event.name == "Unsubscribed":
                changes[channel] = False
            elif holds_back is None:
                if event.name == "Subscribed":
                    changes[channel] = True
            elif event.name == "Subscribed":
                if not holds_back(channel, event):
                    changes[channel] = True
            elif holds_back(channel, event):  # confirms a signup of the policy's channels, lists
                changes[channel] = True
    consent_traits = event.traits.get("consent") if event.traits else None
    if isinstance(consent_traits, dict):
        for key, value in consent_traits.items():
            channel, flag = consent_channel(key), consent_flag(value)
            if channel in CONSENT_CHANNELS and flag is not None:
                changes[channel] = flag
    return changes


def consent_after(consent: Consent, event: Event, holds_back: HoldsBack | None = None) -> Consent:
    """The consent :func:`consent_changes` reads: per channel, the latest event in event order
    wins, wherever the event falls."""
    changes = consent_changes(event, holds_back)
    if not changes:
        return consent
    key = event.order_key
    changed_at = dict(consent.changed_at)
    applied = {}
    for channel, granted in changes.items():
        if _later(changed_at, channel, key):
            applied[channel] = granted
            changed_at[channel] = key
    if not applied:
        return consent
    return replace(consent, changed_at=changed_at, **applied)


def make_consent_reducer(holds_back: HoldsBack | None) -> tuple[Reducer, PartReducer]:
    """The consent reducer and its part reducer, holding back the signups ``holds_back``
    names (see :data:`HoldsBack`)."""

    def part_after(consent: Consent, event: Event) -> Consent:
        return consent_after(consent, event, holds_back)

    def reduce_consent(state: CustomerState, event: Event) -> CustomerState:
        """The state with :func:`consent_after`."""
        return _with_part(state, "consent", part_after(state.consent, event))

    return reduce_consent, part_after


# --- cart and orders (engine/state/cart.py, orders.py) -----------------------------------------


def reduce_cart(state: CustomerState, event: Event) -> CustomerState:
    """The state with :func:`~engine.state.cart.cart_after`."""
    return _with_part(state, "cart", cart_after(state.cart, event))


def reduce_orders(state: CustomerState, event: Event) -> CustomerState:
    """The state with :func:`~engine.state.orders.orders_after`."""
    return _with_part(state, "orders", orders_after(state.orders, event))


# --- the index and the fold -----------------------------------------------------------------

_CART_EVENTS = ("Product Added", "Product Removed", "Cart Viewed", "Checkout Started")
_ORDER_EVENTS = ("Order Completed", "Order Refunded")
_ORDER_KEY = attrgetter("timestamp", "arrival")  # Event.order_key, read in C
STATE_FIELDS = frozenset(field.name for field in fields(CustomerState))
PART_FIELDS = ("consent", "cart", "orders")  # the parts of StateReducer._part_of
# what an event without traits may change besides its reducers' parts: what reduce_seen and
# reduce_seen_late keep (they leave the traits, their keys and the parts as they are)
SEEN_FIELDS = STATE_FIELDS - {"traits", "traits_at", "legacy", *PART_FIELDS}
_TRACK = EventType.TRACK  # once: on Python 3.11 EventType.TRACK goes through EnumType.__getattr__


@dataclass(frozen=True, slots=True)
class _ReducerIndex:
    """Which reducers an event concerns, besides :func:`reduce_seen`: by type, and for a track
    by name."""

    by_type: Mapping[EventType, tuple[Reducer, ...]]
    by_name: Mapping[str, tuple[Reducer, ...]]
    track_default: tuple[Reducer, ...]

    def reducers(self) -> frozenset[Reducer]:
        """Every reducer the index names."""
        named = [*self.by_type.values(), *self.by_name.values(), self.track_default]
        return frozenset(reducer for reducers in named for reducer in reducers)

    def without(self, reducer: Reducer) -> _ReducerIndex:
        """The same index with ``reducer`` left out everywhere."""

        def drop(reducers: tuple[Reducer, ...]) -> tuple[Reducer, ...]:
            return tuple(r for r in reducers if r is not reducer)

        return _ReducerIndex(
            {kind: drop(reducers) for kind, reducers in self.by_type.items()},
            {name: drop(reducers) for name, reducers in self.by_name.items()},
            drop(self.track_default),
        )


class StateReducer:
    """Applies the reducers an event concerns, and folds an event history into a state.

    A fold takes a run of events without traits (most of a shop's stream: product views,
    pages, cart events) in one step with :func:`reduce_seen_run`, making one state for the run
    instead of one or two per event: such an event's other reducers keep to their own parts of
    the state (consent, cart, orders: ``_part_of``), which are worked out on their own and
    given to the run. An event with traits ends the run: the traits reducer reads and sets the
    time zone and locale, which the seen reducer keeps too.

    A late event (older than the state's watermark: received after later ones) folds in on its
    own (:meth:`apply_late`): each part keeps the order key of what set it, so the late event
    changes only what it would have set had it come in order. The history is read again only
    for a state kept before those keys were (``legacy``) or a cart changed more often since
    its last reset than it keeps (:class:`~engine.state.cart.NeedsHistory`)."""

    def __init__(self, phone_region: str = "US", holds_back: HoldsBack | None = None) -> None:
        self.holds_back = holds_back  # the signups that wait for a confirmation, if any
        reduce_traits = make_traits_reducer(phone_region)
        reduce_consent, consent_part = make_consent_reducer(holds_back)
        # The reducers that keep to their own part of the state, which reduce_seen neither
        # reads nor sets, and that part's own reducer: applied before or after reduce_seen,
        # the state is the same.
        self._part_of: dict[Reducer, tuple[str, PartReducer]] = {
            reduce_consent: ("consent", consent_part),
            reduce_cart: ("cart", cart_after),
            reduce_orders: ("orders", orders_after),
        }
        by_name: dict[str, tuple[Reducer, ...]] = {
            **dict.fromkeys(CONSENT_EVENTS, (reduce_traits, reduce_consent)),
            "Order Completed": (reduce_traits, reduce_orders, reduce_cart),
            "Order Refunded": (reduce_traits, reduce_orders),
        }
        for name in _CART_EVENTS:
            by_name[name] = (reduce_traits, reduce_cart)
        by_type: dict[EventType, tuple[Reducer, ...]] = {
            EventType.IDENTIFY: (reduce_traits, reduce_consent),
            EventType.ALIAS: (),
            EventType.PAGE: (reduce_traits,),
            EventType.SCREEN: (reduce_traits,),
            EventType.GROUP: (reduce_traits,),  # context traits only: the group's are its own
        }
        self._index = _ReducerIndex(by_type, by_name, (reduce_traits,))
        self._fields_of: dict[tuple[Reducer, ...], frozenset[str]] = {}
        # the traits reducer leaves a state unchanged when the event carries no traits
        self._index_without_traits = self._index.without(reduce_traits)
        assert self._index_without_traits.reducers() <= self._part_of.keys()  # see _apply_ordered

    def _changing(self, event: Event) -> tuple[Reducer, ...]:
        """The reducers besides :func:`reduce_seen` that can change a state with ``event`` (the
        traits reducer only when it carries traits)."""
        index = self._index if event.traits else self._index_without_traits
        if event.type is _TRACK:
            return index.by_name.get(event.name, index.track_default)
        return index.by_type[event.type]

    def fields_changed(self, event: Event) -> frozenset[str]:
        """The fields of a state that ``event`` may change, in order or late: every field when
        it carries traits (the traits reducer sets the time zone and locale too, and an
        ``update`` step's traits may be anything), else what :func:`reduce_seen` keeps and the
        parts its own reducers keep to."""
        if event.traits:
            return STATE_FIELDS
        changing = self._changing(event)
        found = self._fields_of.get(changing)
        if found is None:
            parts = {self._part_of[reducer][0] for reducer in changing}
            assert parts <= set(PART_FIELDS)
            found = self._fields_of[changing] = SEEN_FIELDS | parts
        return found

    def apply(self, state: CustomerState, event: Event) -> CustomerState:
        """``state`` after ``event``, later than every event the state holds (see
        :meth:`extend` for any event)."""
        state = reduce_seen(state, event)
        for reducer in self._changing(event):
            state = reducer(state, event)
        return state

    def apply_late(self, state: CustomerState, event: Event) -> CustomerState:
        """``state`` after ``event``, older than the state's watermark: as if it had come in
        its place in event order. Raises :class:`~engine.state.cart.NeedsHistory` when the
        state no longer keeps what that takes."""
        state = reduce_seen_late(state, event)
        for reducer in self._changing(event):  # each part keeps to event order by itself
            state = reducer(state, event)
        return state

    def fold(self, events: Iterable[Event]) -> CustomerState:
        """The state of ``events`` (a whole history, in any order)."""
        return self._apply_ordered(CustomerState(), sorted(events, key=_ORDER_KEY))

    def extend(self, state: CustomerState, events: list[Event]) -> CustomerState | None:
        """``state`` after ``events``, in any order and late or not; ``None`` when the caller
        must fold the whole history again (see the class)."""
        ordered = sorted(events, key=_ORDER_KEY)
        watermark = state.watermark
        if watermark is None or not ordered or ordered[0].order_key > watermark:
            return self._apply_ordered(state, ordered)  # in order: most batches
        if state.legacy:
            return None
        newer = bisect_right(ordered, watermark, key=_ORDER_KEY)
        try:
            for event in ordered[:newer]:
                state = self.apply_late(state, event)
        except NeedsHistory:
            return None
        return self._apply_ordered(state, ordered[newer:]) if newer < len(ordered) else state

    def _apply_ordered(self, state: CustomerState, ordered: list[Event]) -> CustomerState:
        """``state`` after ``ordered`` (in event-time order), as :meth:`apply` one by one would
        make it."""
        run: list[Event] = []
        parts: dict[str, Any] = {}  # the run's consent, cart and orders so far
        changing, part_of = self._changing, self._part_of
        for event in ordered:
            if event.traits:
                if run:
                    state = reduce_seen_run(state, run, parts)
                    run, parts = [], {}
                state = self.apply(state, event)
                continue
            for reducer in changing(event):  # consent, cart, orders: by their parts
                name, part_after = part_of[reducer]
                parts[name] = part_after(
                    parts[name] if name in parts else getattr(state, name), event
                )
            run.append(event)
        return reduce_seen_run(state, run, parts) if run else state
