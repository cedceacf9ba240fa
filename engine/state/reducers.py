"""Small pure reducers: ``(state, event) -> state`` for each part of the unified profile.

Each reducer looks at one concern (seen, traits, consent, cart, orders) and returns the state
unchanged when the event is not for it. :class:`StateReducer` indexes them by event, so an event
costs only the reducers that care, and folds events in event-time order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from operator import attrgetter
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.contact import normalize_email, normalize_phone
from engine.events import Event, EventType
from engine.state.profile import (
    CONSENT_CHANNELS,
    Cart,
    CartItem,
    Consent,
    CustomerState,
    Order,
    Orders,
)

Reducer = Callable[[CustomerState, Event], CustomerState]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Layout:
    """How :func:`replace` copies a value class: its field values in field order (one
    ``attrgetter`` call, in C) and the position of each field."""

    values: Callable[[Any], tuple[Any, ...]]
    position: Mapping[str, int]


_LAYOUTS: dict[type, _Layout] = {}


def _layout(cls: type) -> _Layout:
    names = tuple(f.name for f in fields(cls))
    position = {name: index for index, name in enumerate(names)}
    if len(names) > 1:
        return _Layout(attrgetter(*names), position)
    # attrgetter of one name gives the value itself, not a tuple of one
    return _Layout(lambda value: tuple(getattr(value, name) for name in names), position)


def replace(value: T, **changes: Any) -> T:
    """``dataclasses.replace`` for the reducers' hot path: the same result, without its
    per-call field checks (our value classes have only plain init fields, taken in field
    order)."""
    cls = type(value)
    layout = _LAYOUTS.get(cls)
    if layout is None:
        layout = _LAYOUTS[cls] = _layout(cls)
    arguments = list(layout.values(value))
    for name, changed in changes.items():
        arguments[layout.position[name]] = changed
    return cls(*arguments)


def _with_part(state: CustomerState, name: str, part: Any) -> CustomerState:
    """``state`` with its part ``name`` (consent, cart, orders) set to ``part``: ``state``
    itself when the part is unchanged."""
    return state if part is getattr(state, name) else replace(state, **{name: part})


RECENT_ORDERS_KEPT = 20
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


def _number(value: object, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def _text(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


# --- seen: first/last seen, channels, user id, time zone and locale from context -------------


_NO_PARTS: Mapping[str, Any] = {}


def reduce_seen(state: CustomerState, event: Event) -> CustomerState:
    """Times seen, channels seen, the latest userId, and context time zone and locale."""
    return reduce_seen_run(state, (event,))


def reduce_seen_run(
    state: CustomerState, events: Sequence[Event], parts: Mapping[str, Any] = _NO_PARTS
) -> CustomerState:
    """:func:`reduce_seen` over ``events`` (at least one, in event-time order) that no other
    reducer concerns: the same state as applying them one by one, built once. Most events
    (product views, pages without traits) only change what this reducer keeps. ``parts``: the
    consent, cart or orders that the events' own reducers made (see ``_PART_OF``)."""
    user_id = state.user_id
    first = state.first_seen_at
    last = state.last_seen_at
    channels = state.channels
    timezone = state.timezone
    locale = state.locale
    zone_from_context = "timezone" not in state.traits  # traits say it otherwise
    locale_from_context = "locale" not in state.traits
    for event in events:
        timestamp = event.timestamp
        if first is None or timestamp < first:
            first = timestamp
        if last is None or timestamp > last:
            last = timestamp
        if event.channel not in channels:
            channels = channels | {event.channel}
        context = event.context
        if context:
            context_zone = context.get("timezone")
            # the zone already kept needs no check again: valid or not, it stays
            if isinstance(context_zone, str) and zone_from_context and context_zone != timezone:
                timezone = context_zone if valid_timezone(context_zone) else timezone
            context_locale = context.get("locale")
            if isinstance(context_locale, str) and locale_from_context:
                locale = context_locale
        user_id = event.user_id or user_id
    return CustomerState(
        user_id=user_id,
        traits=state.traits,
        consent=parts.get("consent", state.consent),
        cart=parts.get("cart", state.cart),
        orders=parts.get("orders", state.orders),
        channels=channels,
        first_seen_at=first,
        last_seen_at=last,
        timezone=timezone,
        locale=locale,
        event_count=state.event_count + len(events),
        watermark=events[-1].order_key,
    )


# --- traits ---------------------------------------------------------------------------------


def make_traits_reducer(phone_region: str) -> Reducer:
    """The traits reducer, normalising phones with ``phone_region`` for national numbers."""

    def reduce_traits(state: CustomerState, event: Event) -> CustomerState:
        """Merge the event's traits (identify, or any call's ``context.traits``), latest wins."""
        if not event.traits:
            return state
        traits = dict(state.traits)
        for key, value in event.traits.items():
            if key == "consent":
                continue
            name = snake_case(key)
            if name == "email":
                value = normalize_email(value) or value
            elif name == "phone":
                value = normalize_phone(value, phone_region) or value
            traits[name] = value
        timezone = state.timezone
        zone = traits.get("timezone")
        if isinstance(zone, str) and valid_timezone(zone):
            timezone = zone
        locale = traits.get("locale")
        return replace(
            state,
            traits=traits,
            timezone=timezone,
            locale=locale if isinstance(locale, str) else state.locale,
        )

    return reduce_traits


# --- consent --------------------------------------------------------------------------------


def _channel_name(value: object) -> str | None:
    """A consent channel as a shop may write it (``Email``, `` call``): trimmed, lower case."""
    return value.strip().lower() if isinstance(value, str) else None


def consent_changes(event: Event) -> dict[str, bool]:
    """The consent an event sets, by channel: ``Subscribed``/``Unsubscribed`` for
    ``properties.channel`` (email when absent), or an identify's ``traits.consent``."""
    changes: dict[str, bool] = {}
    if event.type is EventType.TRACK and event.name in ("Subscribed", "Unsubscribed"):
        named = event.properties.get("channel")
        channel = "email" if named is None or named == "" else _channel_name(named)
        if channel in CONSENT_CHANNELS:
            changes[channel] = event.name == "Subscribed"
    consent_traits = event.traits.get("consent") if event.traits else None
    if isinstance(consent_traits, dict):
        for key, value in consent_traits.items():
            channel = _channel_name(key)
            if channel in CONSENT_CHANNELS and isinstance(value, bool):
                changes[channel] = value
    return changes


def consent_after(consent: Consent, event: Event) -> Consent:
    """The consent :func:`consent_changes` reads; events are folded in event time, so the
    latest wins."""
    changes = consent_changes(event)
    return replace(consent, **changes) if changes else consent


def reduce_consent(state: CustomerState, event: Event) -> CustomerState:
    """The state with :func:`consent_after`."""
    return _with_part(state, "consent", consent_after(state.consent, event))


# --- cart -----------------------------------------------------------------------------------


def _cart_item(product: Mapping[str, Any], fallback_quantity: float = 1) -> CartItem | None:
    product_id = _text(product.get("product_id")) or _text(product.get("sku"))
    if product_id is None:
        return None
    return CartItem(
        product_id=product_id,
        name=_text(product.get("name")),
        price=_number(product.get("price")),
        quantity=_number(product.get("quantity"), fallback_quantity),
        url=_text(product.get("url")),
        image_url=_text(product.get("image_url")),
        category=_text(product.get("category")),
    )


def cart_after(cart: Cart, event: Event) -> Cart:
    """Product Added and Removed change the cart, Cart Viewed and Checkout Started with products
    replace it with what the shop shows, Order Completed clears it."""
    name = event.name
    if name == "Order Completed":
        return Cart(items=(), updated_at=event.timestamp)
    if name == "Product Added":
        added = _cart_item(event.properties)
        if added is None:
            return cart
        items = list(cart.items)
        for index, item in enumerate(items):
            if item.product_id == added.product_id:
                items[index] = replace(added, quantity=item.quantity + added.quantity)
                break
        else:
            items.append(added)
        return Cart(items=tuple(items), updated_at=event.timestamp)
    if name == "Product Removed":
        product_id = _text(event.properties.get("product_id")) or _text(event.properties.get("sku"))
        removed_quantity = event.properties.get("quantity")
        items = []
        for item in cart.items:
            if item.product_id != product_id:
                items.append(item)
            elif isinstance(removed_quantity, int | float) and removed_quantity < item.quantity:
                items.append(replace(item, quantity=item.quantity - removed_quantity))
        return Cart(items=tuple(items), updated_at=event.timestamp)
    # Cart Viewed / Checkout Started: a snapshot of the cart when products are listed.
    products = event.properties.get("products")
    if not isinstance(products, list):
        return cart
    snapshot = tuple(item for item in map(_cart_item, products) if item is not None)
    return Cart(items=snapshot, updated_at=event.timestamp)


def reduce_cart(state: CustomerState, event: Event) -> CustomerState:
    """The state with :func:`cart_after`."""
    return _with_part(state, "cart", cart_after(state.cart, event))


# --- orders ---------------------------------------------------------------------------------


def _amount(properties: Mapping[str, Any]) -> float | None:
    for key in ("total", "revenue", "value"):
        value = properties.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    products = properties.get("products")
    if isinstance(products, list) and products:
        return sum(_number(p.get("price")) * _number(p.get("quantity"), 1) for p in products)
    return None


def _find_order(recent: tuple[Order, ...], order_id: str | None) -> Order | None:
    for order in recent:
        if order.order_id == order_id:
            return order
    return None


def orders_after(orders: Orders, event: Event) -> Orders:
    """Order Completed counts an order (once per order_id), Order Refunded takes money back."""
    order_id = _text(event.properties.get("order_id"))
    if event.name == "Order Refunded":
        amount = _amount(event.properties)
        if amount is None:
            original = _find_order(orders.recent, order_id)
            amount = original.total if original is not None else 0.0
        return replace(
            orders,
            total=round(orders.total - amount, 2),
            refunded=round(orders.refunded + amount, 2),
        )
    total = _amount(event.properties) or 0.0
    products = event.properties.get("products")
    order = Order(
        order_id=order_id,
        at=event.timestamp,
        total=total,
        channel=event.channel,
        currency=_text(event.properties.get("currency")),
        products=tuple(products) if isinstance(products, list) else (),
    )
    previous = _find_order(orders.recent, order_id) if order_id else None
    if previous is not None:  # the same order reported again (e.g. by web and POS): an update
        recent = tuple(order if o is previous else o for o in orders.recent)
        return replace(orders, total=round(orders.total - previous.total + total, 2), recent=recent)
    return replace(
        orders,
        count=orders.count + 1,
        total=round(orders.total + total, 2),
        last_at=event.timestamp,
        recent=(*orders.recent, order)[-RECENT_ORDERS_KEPT:],
    )


def reduce_orders(state: CustomerState, event: Event) -> CustomerState:
    """The state with :func:`orders_after`."""
    return _with_part(state, "orders", orders_after(state.orders, event))


# --- the index and the fold -----------------------------------------------------------------

_CART_EVENTS = ("Product Added", "Product Removed", "Cart Viewed", "Checkout Started")
_ORDER_EVENTS = ("Order Completed", "Order Refunded")
_ORDER_KEY = attrgetter("timestamp", "arrival")  # Event.order_key, read in C
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


# The reducers that keep to their own part of the state, which reduce_seen neither reads nor
# sets, and that part's own reducer: applied before or after reduce_seen, the state is the same.
PartReducer = Callable[[Any, Event], Any]
_PART_OF: dict[Reducer, tuple[str, PartReducer]] = {
    reduce_consent: ("consent", consent_after),
    reduce_cart: ("cart", cart_after),
    reduce_orders: ("orders", orders_after),
}


class StateReducer:
    """Applies the reducers an event concerns, and folds an event history into a state.

    A fold takes a run of events without traits (most of a shop's stream: product views,
    pages, cart events) in one step with :func:`reduce_seen_run`, making one state for the run
    instead of one or two per event: such an event's other reducers keep to their own parts of
    the state (consent, cart, orders: ``_PART_OF``), which are worked out on their own and
    given to the run. An event with traits ends the run: the traits reducer reads and sets the
    time zone and locale, which the seen reducer keeps too."""

    def __init__(self, phone_region: str = "US") -> None:
        reduce_traits = make_traits_reducer(phone_region)
        by_name: dict[str, tuple[Reducer, ...]] = {
            "Subscribed": (reduce_traits, reduce_consent),
            "Unsubscribed": (reduce_traits, reduce_consent),
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
        # the traits reducer leaves a state unchanged when the event carries no traits
        self._index_without_traits = self._index.without(reduce_traits)
        assert self._index_without_traits.reducers() <= _PART_OF.keys()  # see _apply_ordered

    def _changing(self, event: Event) -> tuple[Reducer, ...]:
        """The reducers besides :func:`reduce_seen` that can change a state with ``event`` (the
        traits reducer only when it carries traits)."""
        index = self._index if event.traits else self._index_without_traits
        if event.type is _TRACK:
            return index.by_name.get(event.name, index.track_default)
        return index.by_type[event.type]

    def apply(self, state: CustomerState, event: Event) -> CustomerState:
        """``state`` after ``event``; the caller keeps event-time order (see :meth:`fold`)."""
        state = reduce_seen(state, event)
        for reducer in self._changing(event):
            state = reducer(state, event)
        return state

    def fold(self, events: Iterable[Event], state: CustomerState | None = None) -> CustomerState:
        """``state`` (empty by default) after ``events`` in event-time order."""
        result = state if state is not None else CustomerState()
        return self._apply_ordered(result, sorted(events, key=_ORDER_KEY))

    def extend(self, state: CustomerState, events: list[Event]) -> CustomerState | None:
        """``state`` after newer ``events``, or ``None`` when one is older than the watermark and
        the caller must fold the whole history again."""
        ordered = sorted(events, key=_ORDER_KEY)
        if state.watermark is not None and ordered and ordered[0].order_key <= state.watermark:
            return None
        return self._apply_ordered(state, ordered)

    def _apply_ordered(self, state: CustomerState, ordered: list[Event]) -> CustomerState:
        """``state`` after ``ordered`` (in event-time order), as :meth:`apply` one by one would
        make it."""
        run: list[Event] = []
        parts: dict[str, Any] = {}  # the run's consent, cart and orders so far
        changing = self._changing
        for event in ordered:
            if event.traits:
                if run:
                    state = reduce_seen_run(state, run, parts)
                    run, parts = [], {}
                state = self.apply(state, event)
                continue
            for reducer in changing(event):  # consent, cart, orders: by their parts
                name, part_after = _PART_OF[reducer]
                parts[name] = part_after(
                    parts[name] if name in parts else getattr(state, name), event
                )
            run.append(event)
        return reduce_seen_run(state, run, parts) if run else state
