"""Carrying outbox rows to the channel providers, each at most once in effect.

The due rows are read a page at a time. Each is checked again just before its call (consent,
address or suppression, so an unsubscribe stops every pending send: ``skipped``), claimed right
before its provider is called (one row, or the one batch a :class:`BatchProvider` is about to
get), and its outcome written before the next call: ``delivered``, ``failed`` with the
provider's reason, or ``pending`` again at the provider's ``retry_at`` (see
:mod:`engine.durable.claims`).

A process that dies between a claim and its outcome leaves that one row (or batch) ``sending``;
the rows it had not claimed yet are sent by the next dispatch. Its holder is then dead (see
:mod:`engine.durable.holders`) and the next dispatch, in any process, retakes the row at once;
one whose holder cannot be told waits for the lease. A provider that deduplicates by the row's
key (the file outbox does) gets it again, harmlessly; for any other the outcome is unknown, and
the row is marked ``unknown`` and reported, never resent blindly. Rows of a held (paused)
campaign wait.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Protocol

from engine.campaigns.durations import format_duration
from engine.campaigns.schema import Campaign
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
from engine.double_opt_in import is_transactional, withdrawn_since
from engine.drive.crash_points import CrashPoint, no_crash
from engine.drive.outbox_port import DueRow, OutboxClaims, OutboxStore
from engine.drive.outbox_status import OutboxStatus
from engine.gc_pauses import frozen_heap
from engine.policies import SendPolicies
from engine.rates import MAX_SLEEP, Rate
from engine.state.codec import encode_cart_items
from engine.state.profile import CustomerState

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 8
RETRY_AFTER = timedelta(minutes=1)


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


def throttles_each(provider: ChannelProvider) -> bool:
    """Whether a throttle counts each delivery of a batch this provider takes (its batches
    only group the writes of single messages), rather than the batch as one call."""
    return bool(getattr(provider, "throttled_per_delivery", False))


class Book(Protocol):
    """The campaigns a dispatcher delivers for: a row of another waits (a paused one's)."""

    @property
    def active(self) -> Sequence[Campaign]: ...


class OutboxDispatcher:
    """Delivers due outbox rows through the providers, by channel."""

    def __init__(
        self,
        store: OutboxStore,
        providers: Mapping[str, ChannelProvider],
        policies: SendPolicies,
        book: Book,
        default_timezone: str,
        clock: Clock,
        lease: timedelta = LEASE,
        batch_size: int = 200,
        crash: CrashPoint = no_crash,
        rates: Mapping[str, Rate] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store  # the rows this dispatcher delivers (a partition's, or all)
        self.providers = providers
        self.policies = policies
        self.book = book
        self.default_timezone = default_timezone
        self.clock = clock
        self.lease = lease
        self.batch_size = batch_size
        self.crash = crash
        self._claims: OutboxClaims | None = None  # while a dispatch runs
        self.rates = dict(rates or {})  # channel -> the rate its provider is held to
        self.sleep = sleep
        # while a dispatch runs: channel -> when its throttle has the next turn for a row put
        # off (each row put off takes the one after: they come due in their order, spread)
        self._put_off_until: dict[str, datetime] = {}

    def dispatch(self) -> Counter[str]:
        """Retake the rows of dead holders, then deliver every due row; counts by outcome.

        A dispatch that fails (the database gone, say) leaves the row it had claimed
        ``sending``; its holder is dead once it returns, so the next dispatch retakes it."""
        outcomes: Counter[str] = Counter()
        now = self.clock()
        self._put_off_until = {}
        with frozen_heap(), self._claiming() as claims:
            outcomes.update(self.recover(now))
            while page := self._due(now):
                self._deliver(page, now, outcomes)
                claims.flush()
        return outcomes

    @contextmanager
    def _claiming(self) -> Iterator[OutboxClaims]:
        """The claims of one dispatch, under a holder alive while it runs."""
        with self.store.claiming() as claims:
            self._claims = claims
            try:
                yield claims
            finally:
                self._claims = None

    def recover(self, now: datetime) -> Counter[str]:
        """Rows left ``sending`` by a holder that is dead, or past their lease when it cannot be
        told whether it is: again to ``pending`` for a provider that deduplicates, else
        ``unknown``. A live holder keeps its rows."""
        return self.store.retake(now, self.lease, self._resends)

    def _resends(self, channel: str) -> bool:
        provider = self.providers.get(channel)
        return provider is not None and is_idempotent(provider)

    def _due(self, now: datetime) -> list[DueRow]:
        """The next page of due rows, read, not claimed: each is claimed right before its
        call, and one another dispatch claimed meanwhile is passed over.

        A journey's messages go out in the order its steps sent them: a ``send`` waits while an
        earlier ``send`` of its journey is ``pending`` (a retry) or ``sending``; each row comes
        with ``failed_before``, the step of an earlier send of its journey that failed for
        good, if any (the row is then skipped, see :meth:`_prepare`). Rows of a held (paused)
        campaign wait."""
        running = {c.id for c in self.book.active}
        return self.store.due(now, running, self.batch_size)

    def _deliver(self, page: list[DueRow], now: datetime, outcomes: Counter[str]) -> None:
        """Check, claim and call each row of ``page``: one by one, and for a batch provider
        the channel's rows of the page as one batch, after the others. A throttled provider
        takes its turn before each call (or batch); a row it has no turn for soon is put off."""
        claims = self._claims
        assert claims is not None
        states = self.store.states([row.customer_id for row in page], now)
        batches: dict[str, list[tuple[DueRow, Delivery]]] = {}
        put_off = self._put_off_until
        batching: dict[str, bool] = {}  # channel -> its provider takes batches (checked once)
        for row in page:
            state = states.get(row.customer_id)
            prepared = self._prepare(row, state, now)
            if isinstance(prepared, OutboxStatus):
                outcomes[f"{row.channel}:{prepared}"] += 1
                continue
            quiet = self._quiet(prepared, state, now)
            if quiet is not None:
                claims.postpone(row, now, quiet[0], quiet[1])
                outcomes[f"{row.channel}:quiet_hours"] += 1
                continue
            if row.channel not in batching:
                batching[row.channel] = isinstance(self.providers[row.channel], BatchProvider)
            if batching[row.channel] and prepared.action not in MIRRORED:
                batches.setdefault(row.channel, []).append((row, prepared))
            elif not self._turn(row.channel, now, put_off):
                self._put_off([row], now, put_off, outcomes)
            elif self._claim(claims, [row], now):
                status = self._settle(row, self._call(row, prepared, now), now)
                outcomes[f"{row.channel}:{status}"] += 1
        for channel, prepared_batch in batches.items():
            if throttles_each(self.providers[channel]):  # a turn per message of the batch
                prepared_batch = self._with_turns(channel, prepared_batch, now, outcomes)
                if not prepared_batch:
                    continue
            elif not self._turn(channel, now, put_off):
                self._put_off([row for row, _ in prepared_batch], now, put_off, outcomes)
                continue
            claimed = self._claim(claims, [row for row, _ in prepared_batch], now)
            batch = [(row, delivery) for row, delivery in prepared_batch if row.id in claimed]
            if not batch:
                continue
            for (row, _), outcome in zip(batch, self._call_batch(channel, batch, now), strict=True):
                outcomes[f"{channel}:{self._settle(row, outcome, now)}"] += 1

    def _quiet(
        self, delivery: Delivery, state: CustomerState | None, now: datetime
    ) -> tuple[datetime, str] | None:
        """Until when and why a delivery due now waits for the end of its channel's quiet
        hours (a send or an audience add of a campaign; a removal, a consent or activity sync
        and a double opt-in confirmation go at once), if it does."""
        if state is None or delivery.action not in (
            DeliveryAction.SEND,
            DeliveryAction.AUDIENCE_ADD,
        ):
            return None
        if is_transactional(delivery.campaign):
            return None
        deferral = self.policies.quiet_until(delivery.channel, state, now)
        if deferral is None or deferral.until is None:
            return None
        return deferral.until, f"quiet_hours: {deferral.detail}"

    def _with_turns(
        self,
        channel: str,
        prepared: list[tuple[DueRow, Delivery]],
        now: datetime,
        outcomes: Counter[str],
    ) -> list[tuple[DueRow, Delivery]]:
        """Those of a batch's rows the channel's throttle has a turn for, each taking one; the
        others are put off."""
        put_off = self._put_off_until
        allowed = []
        for row, delivery in prepared:
            if self._turn(channel, now, put_off):
                allowed.append((row, delivery))
            else:
                self._put_off([row], now, put_off, outcomes)
        return allowed

    def _turn(self, channel: str, now: datetime, put_off: dict[str, datetime]) -> bool:
        """Whether a call on ``channel`` may go now, after waiting its turn of the provider's
        throttle (at most a second); if not, ``put_off`` says until when."""
        rate = self.rates.get(channel)
        if rate is None:
            return True
        if channel in put_off:  # no turn for an earlier row of this dispatch: none for this one
            return False
        wait = self.store.turn(channel, rate, MAX_SLEEP)
        if wait > MAX_SLEEP:
            put_off[channel] = now + timedelta(seconds=wait)
            return False
        if wait > 0:
            self.sleep(wait)
        return True

    def _put_off(
        self,
        rows: list[DueRow],
        now: datetime,
        put_off: dict[str, datetime],
        outcomes: Counter[str],
    ) -> None:
        """Keep ``rows`` (one call's: a row, or a batch) pending until their throttle's next
        turn, and move that turn on by one interval for the rows put off after them."""
        claims = self._claims
        assert claims is not None
        channel = rows[0].channel
        rate = self.rates[channel]
        detail = f"throttled: providers.{channel}.rate is {rate}"
        for row in rows:
            claims.postpone(row, now, put_off[channel], detail)
            outcomes[f"{channel}:throttled"] += 1
        put_off[channel] += timedelta(seconds=rate.interval)

    def _claim(self, claims: OutboxClaims, rows: list[DueRow], now: datetime) -> set[int]:
        provider = self.providers[rows[0].channel]
        claimed = claims.claim(rows, now, synced=not is_idempotent(provider))
        if claimed:
            self.crash("outbox_claimed")
        return claimed

    def _prepare(
        self, row: DueRow, state: CustomerState | None, now: datetime
    ) -> Delivery | OutboxStatus:
        """The delivery for ``row``, or the status it was settled with here (skipped, failed)."""
        fields = dict(row.fields)
        provider = self.providers.get(row.channel)
        if state is None:
            return self._record(row, now, OutboxStatus.SKIPPED, "no_address: the customer is gone")
        if row.failed_before is not None and row.action == "send":
            detail = f"earlier_failed: step {row.failed_before} of this journey was not delivered"
            return self._record(row, now, OutboxStatus.SKIPPED, detail)
        if provider is None:
            return self._record(
                row, now, OutboxStatus.FAILED, f"no provider for channel {row.channel!r}"
            )
        action = DeliveryAction(row.action)
        if action is DeliveryAction.CONSENT:
            if not isinstance(provider, ConsentListener):
                return self._record(
                    row, now, OutboxStatus.SKIPPED, "not_synced: the provider keeps no consent"
                )
            # the consent as it stands now (the latest event by event time), not as the row said
            fields["granted"] = bool(getattr(state.consent, row.channel, False))
        elif action is DeliveryAction.ACTIVITY:
            if not isinstance(provider, ActivityListener):
                return self._record(
                    row, now, OutboxStatus.SKIPPED, "not_synced: the provider mirrors no activity"
                )
            fields["cart"] = _cart(state)
            fields["opted_in"] = bool(getattr(state.consent, row.channel, False))
        elif action is not DeliveryAction.AUDIENCE_REMOVE:
            transactional = is_transactional(row.campaign_id)
            stale = self._stale_confirmation(row, state, now) if transactional else None
            if stale is not None:
                return self._record(row, now, OutboxStatus.SKIPPED, stale)
            check = self.policies.unreachable if transactional else self.policies.blocked
            blocked = check(row.channel, state)
            if blocked is not None and blocked.reason is not None:
                return self._record(row, now, OutboxStatus.SKIPPED, blocked.reason.value)
            late = None if transactional else self.policies.stale(row.channel, row.decided_at, now)
            if late is not None:  # (a confirmation has its own expiry: its link's)
                return self._record(row, now, OutboxStatus.SKIPPED, late)
        if "render_error" in fields:
            return self._record(
                row, now, OutboxStatus.FAILED, f"render_error: {fields['render_error']}"
            )
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

    def _stale_confirmation(self, row: DueRow, state: CustomerState, now: datetime) -> str | None:
        """Why a double opt-in confirmation decided at ``row.decided_at`` (the signup) must
        not go out now, if it must not: the customer consents already, withdrew consent since
        the signup, or the link would have expired (a backlog, a late signup)."""
        consent = state.consent
        if getattr(consent, row.channel, False):
            return f"already_consented: the customer consents to {row.channel} now"
        if withdrawn_since(consent, row.channel, row.decided_at):
            return "unsubscribed: consent was withdrawn after the signup"
        policy = self.policies.double_opt_in
        if policy is not None and now >= row.decided_at + policy.expires:
            return f"expired: the link lasts {format_duration(policy.expires)} from the signup"
        return None

    def _call(self, row: DueRow, delivery: Delivery, now: datetime) -> DeliveryOutcome:
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
        self, channel: str, batch: list[tuple[DueRow, Delivery]], now: datetime
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

    def _settle(self, row: DueRow, outcome: DeliveryOutcome, now: datetime) -> OutboxStatus:
        """Keep what the provider did with the claimed ``row``; the status it ends in."""
        claims = self._claims
        assert claims is not None
        synced = not is_idempotent(self.providers[row.channel])
        detail = outcome.detail
        if outcome.status is DeliveryStatus.DELIVERED:
            status = OutboxStatus.DELIVERED
            claims.settle(row, now, status, detail, synced=synced, provider_id=outcome.provider_id)
            return status
        if outcome.status is DeliveryStatus.SKIPPED:
            status = OutboxStatus.SKIPPED
        elif outcome.status is DeliveryStatus.UNKNOWN:
            status = OutboxStatus.UNKNOWN
        elif outcome.retry_at is not None and row.attempts + 1 < MAX_ATTEMPTS:
            status = OutboxStatus.PENDING
            claims.settle(row, now, status, detail, synced=synced, retry_at=outcome.retry_at)
            return status
        else:
            status = OutboxStatus.FAILED
        claims.settle(row, now, status, detail, synced=synced)
        return status

    def _record(
        self, row: DueRow, now: datetime, status: OutboxStatus, detail: str
    ) -> OutboxStatus:
        """Keep the outcome of ``row``, settled here without a call (skipped, failed)."""
        claims = self._claims
        assert claims is not None
        provider = self.providers.get(row.channel)
        synced = provider is None or not is_idempotent(provider)
        claims.decide(row, now, status, detail, synced=synced)
        return status
