"""The unified state of one customer, as frozen values with a JSON form for storage.

:class:`CustomerState` is what campaigns see as ``customer`` (CAMPAIGN_FORMAT.md). It is derived
from the event log by the reducers in :mod:`engine.state.reducers` and can always be rebuilt.

Each part also keeps the order key (event time, arrival) of what last set it: a trait, a
channel's consent, the user id, the cart since its last reset, each order. So an event that
arrives late (older than the latest applied) folds in where it belongs in event order, without
reading the customer's history again: the state is a function of the set of events, whatever
order they arrive in (see docs/ingest.md, "Late events").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.events import OrderKey
from engine.values import quick_init


@quick_init
@dataclass(frozen=True, slots=True)
class CartItem:
    """One product line in the cart."""

    product_id: str
    name: str | None = None
    price: float = 0.0
    quantity: float = 1
    url: str | None = None
    image_url: str | None = None
    category: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class CartChange:
    """A product added to or removed from the cart, kept until the cart's next reset so that a
    late one can be put in its place. ``item`` is what was added (its quantity the amount), or
    for a removal the product's id with ``quantity`` the amount (``None``: all of it)."""

    key: OrderKey
    added: bool
    product_id: str
    item: CartItem | None = None
    quantity: float | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Cart:
    """The open cart: cleared by an order.

    ``items`` is ``base`` (what the cart held at its last reset: an order empties it, a Cart
    Viewed or Checkout Started that lists products shows it whole) with ``changes`` (the adds
    and removals since, in event order) applied. ``since`` is the order key of that reset;
    ``compacted``: the oldest changes were folded into ``base`` (a cart changed more than
    :data:`~engine.state.cart.CHANGES_KEPT` times since its reset) and ``since`` is where
    that stopped, not a reset: an event older than it needs the history."""

    items: tuple[CartItem, ...] = ()
    updated_at: datetime | None = None
    since: OrderKey | None = None
    base: tuple[CartItem, ...] = ()
    changes: tuple[CartChange, ...] = ()
    compacted: bool = False

    @property
    def value(self) -> float:
        """Sum of price times quantity over the items."""
        return round(sum(item.price * item.quantity for item in self.items), 2)


@quick_init
@dataclass(frozen=True, slots=True)
class Order:
    """One completed order, in whichever channel (web store, POS, call center).

    An order reported again (the web store, then the POS) keeps its place among the orders by
    its first report (``key``) and the content of its latest (``reported``); ``refunds``
    counts the refunds that named no amount and took its total back."""

    order_id: str | None
    at: datetime
    total: float
    channel: str
    currency: str | None = None
    products: tuple[Mapping[str, Any], ...] = ()
    key: OrderKey | None = None
    reported: OrderKey | None = None
    refunds: int = 0


@quick_init
@dataclass(frozen=True, slots=True)
class Orders:
    """Order history summary; ``recent`` keeps the last few orders (by event order) so refunds
    and repeated reports can find them. ``pending_refunds``: refunds without an amount whose
    order was not known when they came, as ``(order_id, key)``, for it to arrive late."""

    count: int = 0
    total: float = 0.0
    refunded: float = 0.0
    last_at: datetime | None = None
    recent: tuple[Order, ...] = ()
    pending_refunds: tuple[tuple[str, OrderKey], ...] = ()

    @property
    def last(self) -> Order | None:
        """The latest order by event time."""
        return self.recent[-1] if self.recent else None


@quick_init
@dataclass(frozen=True, slots=True)
class Consent:
    """Consent per channel; every channel starts without it. The latest event by event order
    wins: ``changed_at`` keeps, per channel, the order key of the event that set it."""

    email: bool = False
    sms: bool = False
    call: bool = False
    ads: bool = False
    changed_at: Mapping[str, OrderKey] = field(default_factory=dict)


TRAIT_PROPERTIES = ("email", "phone", "first_name", "last_name")
"""The properties of :class:`CustomerState`, each read from its traits alone."""


@quick_init
@dataclass(frozen=True, slots=True)
class CustomerState:
    """Everything known about one customer, merged across channels and identities.

    ``watermark`` is the order key (event time, arrival) of the latest event applied: a later
    event applies on top, an earlier (late) one folds in by the keys each part keeps.
    ``user_id_at`` and ``traits_at`` are those keys for the user id and each trait;
    ``context_timezone`` and ``context_locale`` are the latest the events' context gave (with
    ``context_at``), used where the traits give none. ``legacy``: read from a form that kept
    no such keys (before migration 0009): a late event then folds the history again.
    """

    user_id: str | None = None
    traits: Mapping[str, Any] = field(default_factory=dict)
    consent: Consent = Consent()
    cart: Cart = Cart()
    orders: Orders = Orders()
    channels: frozenset[str] = frozenset()
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    timezone: str | None = None
    locale: str | None = None
    event_count: int = 0
    watermark: OrderKey | None = None
    user_id_at: OrderKey | None = None
    traits_at: Mapping[str, OrderKey] = field(default_factory=dict)
    context_timezone: str | None = None
    context_locale: str | None = None
    context_at: Mapping[str, OrderKey] = field(default_factory=dict)
    legacy: bool = False

    @property
    def email(self) -> str | None:
        """The customer's email address (normalised), from traits."""
        value = self.traits.get("email")
        return value if isinstance(value, str) else None

    @property
    def phone(self) -> str | None:
        """The customer's phone in E.164, from traits."""
        value = self.traits.get("phone")
        return value if isinstance(value, str) else None

    @property
    def first_name(self) -> str | None:
        """First name, from traits."""
        value = self.traits.get("first_name")
        return value if isinstance(value, str) else None

    @property
    def last_name(self) -> str | None:
        """Last name, from traits."""
        value = self.traits.get("last_name")
        return value if isinstance(value, str) else None
