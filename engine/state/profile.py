"""The unified state of one customer, as frozen values with a JSON form for storage.

:class:`CustomerState` is what campaigns see as ``customer`` (CAMPAIGN_FORMAT.md). It is derived
from the event log by the reducers in :mod:`engine.state.reducers` and can always be rebuilt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.values import quick_init

CONSENT_CHANNELS = ("email", "sms", "call", "ads")


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
class Cart:
    """The open cart: cleared by an order."""

    items: tuple[CartItem, ...] = ()
    updated_at: datetime | None = None

    @property
    def value(self) -> float:
        """Sum of price times quantity over the items."""
        return round(sum(item.price * item.quantity for item in self.items), 2)


@quick_init
@dataclass(frozen=True, slots=True)
class Order:
    """One completed order, in whichever channel (web store, POS, call center)."""

    order_id: str | None
    at: datetime
    total: float
    channel: str
    currency: str | None = None
    products: tuple[Mapping[str, Any], ...] = ()


@quick_init
@dataclass(frozen=True, slots=True)
class Orders:
    """Order history summary; ``recent`` keeps the last few orders so refunds can find them."""

    count: int = 0
    total: float = 0.0
    refunded: float = 0.0
    last_at: datetime | None = None
    recent: tuple[Order, ...] = ()

    @property
    def last(self) -> Order | None:
        """The latest order by event time."""
        return self.recent[-1] if self.recent else None


@quick_init
@dataclass(frozen=True, slots=True)
class Consent:
    """Consent per channel; every channel starts without it."""

    email: bool = False
    sms: bool = False
    call: bool = False
    ads: bool = False


@quick_init
@dataclass(frozen=True, slots=True)
class CustomerState:
    """Everything known about one customer, merged across channels and identities.

    ``watermark`` is the order key (event time, arrival) of the latest event applied, so a later
    event can be applied on top and an earlier one triggers a rebuild from the log.
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
    watermark: tuple[datetime, int] | None = None

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
