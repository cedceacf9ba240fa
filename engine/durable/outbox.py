"""Carrying outbox rows to the channel providers, each at most once in effect.

A row is claimed (``pending`` -> ``sending``, attempts + 1) and committed before its provider is
called; the outcome is recorded afterwards (for a provider that deduplicates, a claimed batch's
outcomes in one transaction; for any other, each at once): ``delivered``, ``skipped`` (consent,
address or suppression checked again just before the call, so an unsubscribe stops every pending
send), ``failed`` with the provider's reason, or ``pending`` again at the provider's ``retry_at``.

A crash between the two leaves the row ``sending``. Once its lease has passed, a provider that
deduplicates by the row's key (the file outbox does) gets it again, harmlessly; for any other the
outcome is unknown, and the row is marked ``unknown`` and reported, never resent blindly.
Rows of a held (paused) campaign wait.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from engine.channels import (
    ActivityListener,
    BatchProvider,
    ChannelProvider,
    ConsentChange,
    ConsentListener,
    CustomerActivity,
    Delivery,
    DeliveryAction,
    DeliveryOutcome,
    DeliveryStatus,
    Recipient,
)
from engine.clock import Clock
from engine.durable.book import CampaignBook
from engine.durable.crash_points import CrashPoint, no_crash
from engine.policies import SendPolicies
from engine.state.codec import encode_cart_items
from engine.state.profile import CustomerState
from engine.storage.customer_store import CustomerStore
from engine.storage.tables import outbox

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 8
RETRY_AFTER = timedelta(minutes=1)
UNKNOWN_DETAIL = "the process stopped while the provider was called; not resent, check by hand"


MIRRORED = frozenset({DeliveryAction.CONSENT, DeliveryAction.ACTIVITY})  # one by one, not batched


def _cart(state: CustomerState) -> dict[str, Any]:
    """The customer's open cart as plain data, for a provider that mirrors it."""
    cart = state.cart
    return {
        "items": encode_cart_items(cart.items),
        "value": cart.value,
        "updated_at": cart.updated_at,
    }


def _raised(exc: Exception, now: datetime) -> DeliveryOutcome:
    """The outcome of a provider that raised instead of answering: failed, retried later."""
    return DeliveryOutcome(DeliveryStatus.FAILED, f"{type(exc).__name__}: {exc}", now + RETRY_AFTER)


def is_idempotent(provider: ChannelProvider) -> bool:
    """Whether the provider deduplicates deliveries by key (a resend is then harmless)."""
    return bool(getattr(provider, "idempotent", False))


class OutboxDispatcher:
    """Delivers due outbox rows through the providers, by channel."""

    def __init__(
        self,
        db: sa.Engine,
        providers: Mapping[str, ChannelProvider],
        policies: SendPolicies,
        book: CampaignBook,
        default_timezone: str,
        clock: Clock,
        lease: timedelta = LEASE,
        batch_size: int = 200,
        crash: CrashPoint = no_crash,
    ) -> None:
        self.db = db
        self.providers = providers
        self.policies = policies
        self.book = book
        self.default_timezone = default_timezone
        self.clock = clock
        self.lease = lease
        self.batch_size = batch_size
        self.crash = crash
        self._lock = db.dialect.name == "postgresql"
        self._store = CustomerStore(db.dialect.name)
        self._unrecorded: list[tuple[int, dict[str, Any]]] = []

    def dispatch(self) -> Counter[str]:
        """Recover stale claims, then deliver every due row; counts by outcome."""
        outcomes: Counter[str] = Counter()
        now = self.clock()
        outcomes.update(self.recover(now))
        while True:
            claimed = self._claim(now)
            if not claimed:
                return outcomes
            self.crash("outbox_claimed")
            states = self._states([row.customer_id for row in claimed])
            batches: dict[str, list[tuple[Any, Delivery]]] = {}
            for row in claimed:
                prepared = self._prepare(row, states.get(row.customer_id), now)
                if isinstance(prepared, str):
                    outcomes[f"{row.channel}:{prepared}"] += 1
                elif isinstance(self.providers[row.channel], BatchProvider) and (
                    prepared.action not in MIRRORED
                ):
                    batches.setdefault(row.channel, []).append((row, prepared))
                else:
                    status = self._settle(row, self._call(row, prepared, now), now)
                    outcomes[f"{row.channel}:{status}"] += 1
            for channel, batch in batches.items():
                for (row, _), outcome in zip(
                    batch, self._call_batch(channel, batch, now), strict=True
                ):
                    outcomes[f"{channel}:{self._settle(row, outcome, now)}"] += 1
            self._flush()

    def recover(self, now: datetime) -> Counter[str]:
        """Rows left ``sending`` by a stopped process, past their lease: again to ``pending``
        for a provider that deduplicates, else ``unknown``."""
        found: Counter[str] = Counter()
        with self.db.begin() as conn:
            stale = list(
                conn.execute(
                    sa.select(outbox.c.id, outbox.c.channel).where(
                        outbox.c.status == "sending", outbox.c.updated_at <= now - self.lease
                    )
                )
            )
            for row in stale:
                provider = self.providers.get(row.channel)
                again = provider is not None and is_idempotent(provider)
                values: dict[str, Any] = (
                    {"status": "pending"}
                    if again
                    else {"status": "unknown", "detail": UNKNOWN_DETAIL}
                )
                conn.execute(
                    outbox.update().where(outbox.c.id == row.id).values(updated_at=now, **values)
                )
                found[f"{row.channel}:{'reclaimed' if again else 'unknown'}"] += 1
        return found

    def _claim(self, now: datetime) -> list[Any]:
        running = sorted(c.id for c in self.book.active)
        with self.db.begin() as conn:
            query = (
                sa.select(outbox)
                .where(
                    outbox.c.status == "pending",
                    outbox.c.next_attempt_at <= now,
                    # consent changes belong to no campaign
                    sa.or_(outbox.c.campaign_id.in_(running), outbox.c.campaign_id == ""),
                )
                .order_by(outbox.c.next_attempt_at, outbox.c.id)
                .limit(self.batch_size)
            )
            if self._lock:
                query = query.with_for_update(skip_locked=True)
            rows = list(conn.execute(query))
            for row in rows:
                conn.execute(
                    outbox.update()
                    .where(outbox.c.id == row.id)
                    .values(status="sending", attempts=row.attempts + 1, updated_at=now)
                )
        return rows

    def _states(self, customer_ids: list[str]) -> dict[str, CustomerState]:
        """The current state of each customer (of their survivor, for a merged one)."""
        wanted = sorted(set(customer_ids))
        with self.db.connect() as conn:
            found = self._store.states(conn, wanted)
            for customer_id in wanted:
                if customer_id not in found:
                    live = self._store.resolve(conn, customer_id)
                    state = self._store.states(conn, [live]).get(live) if live else None
                    if state is not None:
                        found[customer_id] = state
            return found

    def _prepare(self, row: Any, state: CustomerState | None, now: datetime) -> Delivery | str:
        """The delivery for ``row``, or the status it was settled with here (skipped, failed)."""
        fields = dict(row.fields)
        provider = self.providers.get(row.channel)
        if state is None:
            return self._record(row, now, "skipped", "no_address: the customer is gone")
        if provider is None:
            return self._record(row, now, "failed", f"no provider for channel {row.channel!r}")
        action = DeliveryAction(row.action)
        if action is DeliveryAction.CONSENT:
            if not isinstance(provider, ConsentListener):
                return self._record(
                    row, now, "skipped", "not_synced: the provider keeps no consent"
                )
            # the consent as it stands now (the latest event by event time), not as the row said
            fields["granted"] = bool(getattr(state.consent, row.channel, False))
        elif action is DeliveryAction.ACTIVITY:
            if not isinstance(provider, ActivityListener):
                return self._record(
                    row, now, "skipped", "not_synced: the provider mirrors no activity"
                )
            fields["cart"] = _cart(state)
            fields["opted_in"] = bool(getattr(state.consent, row.channel, False))
        elif action is not DeliveryAction.AUDIENCE_REMOVE:
            blocked = self.policies.blocked(row.channel, state)
            if blocked is not None and blocked.reason is not None:
                return self._record(row, now, "skipped", blocked.reason.value)
        if "render_error" in fields:
            return self._record(row, now, "failed", f"render_error: {fields['render_error']}")
        return Delivery(
            key=row.key,
            campaign=row.campaign_id,
            journey=row.journey_id,
            step=row.step,
            channel=row.channel,
            action=action,
            due_at=row.decided_at,
            recipient=Recipient(
                customer_id=row.customer_id,
                user_id=state.user_id,
                email=state.email,
                phone=state.phone,
                first_name=state.first_name,
                last_name=state.last_name,
                timezone=state.timezone or self.default_timezone,
                locale=state.locale,
            ),
            fields=fields,
        )

    def _call(self, row: Any, delivery: Delivery, now: datetime) -> DeliveryOutcome:
        provider = self.providers[row.channel]
        try:
            if delivery.action is DeliveryAction.CONSENT:
                assert isinstance(provider, ConsentListener)
                change = ConsentChange(
                    delivery.key,
                    delivery.recipient,
                    delivery.channel,
                    bool(delivery.fields["granted"]),
                    delivery.due_at,
                )
                outcome = provider.consent_changed(change)
            elif delivery.action is DeliveryAction.ACTIVITY:
                assert isinstance(provider, ActivityListener)
                fields = delivery.fields
                activity = CustomerActivity(
                    delivery.key,
                    delivery.recipient,
                    str(fields["event"]),
                    fields.get("properties") or {},
                    delivery.due_at,
                    fields["cart"],
                    bool(fields["opted_in"]),
                )
                outcome = provider.activity(activity)
            else:
                outcome = provider.deliver(delivery)
        except Exception as exc:  # noqa: BLE001 - a provider bug fails this row, not the run
            outcome = _raised(exc, now)
        self.crash("outbox_delivered")
        return outcome

    def _call_batch(
        self, channel: str, batch: list[tuple[Any, Delivery]], now: datetime
    ) -> list[DeliveryOutcome]:
        provider = self.providers[channel]
        assert isinstance(provider, BatchProvider)
        deliveries = [delivery for _, delivery in batch]
        try:
            outcomes = provider.deliver_batch(deliveries)
            if len(outcomes) != len(deliveries):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(deliveries)} deliveries")
        except Exception as exc:  # noqa: BLE001 - as for one delivery, for each of the batch
            outcomes = [_raised(exc, now)] * len(deliveries)
        self.crash("outbox_delivered")
        return outcomes

    def _settle(self, row: Any, outcome: DeliveryOutcome, now: datetime) -> str:
        """Record what the provider did with ``row``; the status it ends in."""
        if outcome.status is DeliveryStatus.DELIVERED:
            return self._record(row, now, "delivered", outcome.detail, outcome.provider_id)
        if outcome.status is DeliveryStatus.UNKNOWN:
            return self._record(row, now, "unknown", outcome.detail)
        if outcome.retry_at is not None and row.attempts + 1 < MAX_ATTEMPTS:
            return self._record(row, now, "pending", outcome.detail, retry_at=outcome.retry_at)
        return self._record(row, now, "failed", outcome.detail)

    def _record(
        self,
        row: Any,
        now: datetime,
        status: str,
        detail: str,
        provider_id: str | None = None,
        retry_at: datetime | None = None,
    ) -> str:
        values: dict[str, Any] = {"status": status, "detail": detail or None, "updated_at": now}
        if provider_id is not None:
            values["provider_id"] = provider_id
        if retry_at is not None:
            values["next_attempt_at"] = retry_at
        self._unrecorded.append((row.id, values))
        provider = self.providers.get(row.channel)
        if provider is None or not is_idempotent(provider):
            self._flush()  # a crash must not leave this one's outcome unknown
        return status

    def _flush(self) -> None:
        """Record the outcomes kept so far, in one transaction. Until then their rows stay
        ``sending``: after a crash a deduplicating provider just gets them again."""
        if self._unrecorded:
            with self.db.begin() as conn:
                for row_id, values in self._unrecorded:
                    conn.execute(outbox.update().where(outbox.c.id == row_id).values(**values))
            self._unrecorded.clear()
