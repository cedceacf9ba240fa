"""The outbox port's contract, on each of its stores: memory, SQLite and PostgreSQL. The same
dispatcher delivers over each; what it sends, in what order, how often, and what each row ends
as must not depend on the store: rows unique by key, due by time then id, a journey's sends in
order, retries, claims that die with their dispatch, throttles, partitions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.api import Followup
from engine.campaigns.loader import load_campaigns
from engine.channels import Delivery, DeliveryOutcome, DeliveryStatus
from engine.drive.dispatcher import MAX_ATTEMPTS, OutboxDispatcher
from engine.drive.memory_outbox import MemoryOutbox
from engine.drive.outbox_port import NewOutboxRow, OutboxStore
from engine.drive.outbox_status import UNKNOWN_DETAIL, OutboxStatus
from engine.drive.partitions import Partition
from engine.durable.book import CampaignBook
from engine.durable.sql_outbox import SqlOutboxStore
from engine.events import parse_message
from engine.journeys.memory_customers import InMemoryCustomers
from engine.policies import Policies, SendPolicies
from engine.rates import Rate
from engine.state.reducers import StateReducer
from tests.durable.harness import Clock, make_project, open_followup

T = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
CAMPAIGN = "abandoned-cart"
USERS = ("ann", "bob", "cy", "dee", "eve", "fay")


class Stop(Exception):
    """A dispatch dies here."""


@dataclass
class Provider:
    """An email provider that answers as a test scripts it, and records each call."""

    idempotent: bool = True
    name: str = "email"
    answers: dict[str, list[DeliveryOutcome]] = field(default_factory=dict)  # key -> next ones
    calls: list[str] = field(default_factory=list)  # keys, in call order

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        self.calls.append(delivery.key)
        queued = self.answers.get(delivery.key)
        if queued:
            return queued.pop(0)
        return DeliveryOutcome(DeliveryStatus.DELIVERED, provider_id=f"p-{delivery.key}")


@dataclass
class Outbox:
    """One store of the kind a test runs on, its customers, and dispatchers over it."""

    store: OutboxStore
    ids: dict[str, str]  # user -> customer id
    clock: Clock
    book: CampaignBook
    over: Any  # (partition) -> a store of the same rows, handing out the partition's
    take_in: Any  # (message) -> None: a Segment message reaches the customers
    closing: list[Any] = field(default_factory=list)

    def row(self, user: str, step: str, journey: str | None = None, **extra: Any) -> NewOutboxRow:
        journey_id = f"j-{user}" if journey is None else journey
        return NewOutboxRow(
            key=f"{journey_id}:{step}",
            journey_id=journey_id,
            step=step,
            campaign_id=extra.pop("campaign_id", CAMPAIGN),
            customer_id=self.ids[user],
            channel="email",
            action=extra.pop("action", "send"),
            decided_at=extra.pop("decided_at", T),
            fields={"subject": f"{step} for {user}"},
            **extra,
        )

    def dispatcher(
        self, provider: Provider, store: OutboxStore | None = None, **options: Any
    ) -> OutboxDispatcher:
        return OutboxDispatcher(
            store or self.store,
            {"email": provider},
            SendPolicies(Policies()),
            self.book,
            "UTC",
            self.clock,
            **options,
        )

    def status(self, key: str) -> tuple[OutboxStatus, int]:
        found = self.store.find(key)
        assert found is not None
        return found.status, found.attempts


def _identify(user: str) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": user,
        "messageId": f"{user}-id",
        "timestamp": (T - timedelta(days=1)).isoformat(),
        "traits": {"email": f"{user}@example.com", "consent": {"email": True}},
    }


def _memory(book: CampaignBook, clock: Clock) -> Outbox:
    customers = InMemoryCustomers(StateReducer("US"))
    ids = {}
    for user in USERS:
        (event,) = parse_message(_identify(user))
        ids[user] = customers.apply(event).customer_id
    store = MemoryOutbox(customers)

    def take_in(message: dict[str, Any]) -> None:
        for event in parse_message(message):
            customers.apply(event)

    return Outbox(store, ids, clock, book, store.over, take_in)


def _sql(project: Path, url: str, book: CampaignBook, clock: Clock) -> Outbox:
    followup: Followup = open_followup(project, url, clock)
    followup.ingest_messages([_identify(user) for user in USERS])
    ids = {user: followup.customer_id(user) or "" for user in USERS}
    store = SqlOutboxStore(followup.engine)

    def take_in(message: dict[str, Any]) -> None:
        followup.ingest_messages([message])

    return Outbox(store, ids, clock, book, store.over, take_in, [followup.close])


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outbox]:
    """An empty outbox of the kind asked for, six customers who consent to email, the
    abandoned cart campaign running."""
    project = make_project(tmp_path / "project", ["abandoned_cart"])
    book = CampaignBook(load_campaigns([project / "campaigns"]).require().values())
    clock = Clock(T)
    if request.param == "memory":
        found = _memory(book, clock)
    elif request.param == "sqlite":
        found = _sql(project, f"sqlite:///{tmp_path / 'followup.db'}", book, clock)
    else:
        found = _sql(project, request.getfixturevalue("empty_postgres"), book, clock)
    yield found
    for close in found.closing:
        close()


def test_a_key_is_kept_once_and_rows_go_by_due_time_then_id(outbox: Outbox) -> None:
    outbox.store.add(
        [
            outbox.row("ann", "1", decided_at=T + timedelta(minutes=5)),
            outbox.row("bob", "1"),
            outbox.row("cy", "1", decided_at=T + timedelta(hours=1)),  # not due yet
            outbox.row("dee", "1", decided_at=T - timedelta(minutes=5)),
        ],
        T,
    )
    again = outbox.row("ann", "1", decided_at=T - timedelta(hours=1))
    outbox.store.add([again], T)  # a key kept already: the first row stays
    outbox.clock.now = T + timedelta(minutes=10)
    provider = Provider()
    done = outbox.dispatcher(provider).dispatch()
    assert provider.calls == ["j-dee:1", "j-bob:1", "j-ann:1"]
    assert done == Counter({"email:delivered": 3})
    assert outbox.status("j-cy:1") == (OutboxStatus.PENDING, 0)
    found = outbox.store.find("j-ann:1")
    assert found is not None and found.provider_id == "p-j-ann:1" and found.claimed_by is None
    assert outbox.dispatcher(provider).dispatch() == Counter()  # nothing is sent twice


def test_rows_of_a_campaign_not_running_wait_and_consent_rows_go(outbox: Outbox) -> None:
    outbox.store.add(
        [
            outbox.row("ann", "1", campaign_id="retired"),
            outbox.row("bob", "c", journey="", campaign_id="", action="send"),
        ],
        T,
    )
    provider = Provider()
    outbox.dispatcher(provider).dispatch()
    assert provider.calls == [":c"]
    assert outbox.status("j-ann:1") == (OutboxStatus.PENDING, 0)


def test_a_journeys_send_waits_for_its_earlier_send_and_is_skipped_after_it_failed(
    outbox: Outbox,
) -> None:
    retry = DeliveryOutcome(DeliveryStatus.FAILED, "greylisted", T + timedelta(minutes=5))
    failed = DeliveryOutcome(DeliveryStatus.FAILED, "mailbox full")
    provider = Provider(answers={"j-ann:1": [retry], "j-bob:1": [failed]})
    outbox.store.add([outbox.row(u, s) for u in ("ann", "bob") for s in ("1", "2")], T)
    first = outbox.dispatcher(provider).dispatch()
    # Bob's second step follows his first's failure in the same dispatch: the next page
    assert first == Counter({"email:pending": 1, "email:failed": 1, "email:skipped": 1})
    assert outbox.status("j-ann:1") == (OutboxStatus.PENDING, 1)
    assert outbox.status("j-ann:2") == (OutboxStatus.PENDING, 0)  # waits for step 1's retry
    skipped = outbox.store.find("j-bob:2")
    assert skipped is not None and skipped.status is OutboxStatus.SKIPPED
    assert skipped.detail == "earlier_failed: step 1 of this journey was not delivered"
    outbox.clock.now = T + timedelta(minutes=5)
    assert outbox.dispatcher(provider).dispatch() == Counter({"email:delivered": 2})
    assert provider.calls == ["j-ann:1", "j-bob:1", "j-ann:1", "j-ann:2"]
    assert outbox.status("j-ann:1") == (OutboxStatus.DELIVERED, 2)


def test_a_row_that_keeps_failing_fails_for_good_after_the_last_attempt(outbox: Outbox) -> None:
    again = [
        DeliveryOutcome(DeliveryStatus.FAILED, "busy", T + timedelta(minutes=n + 1))
        for n in range(MAX_ATTEMPTS)
    ]
    provider = Provider(answers={"j-ann:1": again})
    outbox.store.add([outbox.row("ann", "1")], T)
    for minute in range(MAX_ATTEMPTS + 2):
        outbox.clock.now = T + timedelta(minutes=minute)
        outbox.dispatcher(provider).dispatch()
    assert len(provider.calls) == MAX_ATTEMPTS
    assert outbox.status("j-ann:1") == (OutboxStatus.FAILED, MAX_ATTEMPTS)


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_dispatch_that_dies_in_a_call_leaves_one_row_to_retake(
    outbox: Outbox, idempotent: bool
) -> None:
    """Dead after its second call: the first row's outcome was written with the second claim;
    the second row is ``sending``, sent again by a provider that deduplicates, else
    ``unknown``; the third was never claimed."""
    outbox.store.add([outbox.row(user, "1") for user in ("ann", "bob", "cy")], T)
    provider = Provider(idempotent=idempotent)
    calls = 0

    def crash(point: str) -> None:
        nonlocal calls
        calls += point == "outbox_delivered"
        if calls == 2:
            raise Stop

    with pytest.raises(Stop):
        outbox.dispatcher(provider, crash=crash).dispatch()
    assert outbox.status("j-ann:1") == (OutboxStatus.DELIVERED, 1)
    assert outbox.status("j-bob:1") == (OutboxStatus.SENDING, 1)
    assert outbox.status("j-cy:1") == (OutboxStatus.PENDING, 0)
    after = outbox.dispatcher(provider).dispatch()
    if idempotent:
        assert after == Counter({"email:reclaimed": 1, "email:delivered": 2})
        assert provider.calls == ["j-ann:1", "j-bob:1", "j-bob:1", "j-cy:1"]
        assert outbox.status("j-bob:1") == (OutboxStatus.DELIVERED, 2)
    else:
        assert after == Counter({"email:unknown": 1, "email:delivered": 1})
        assert provider.calls == ["j-ann:1", "j-bob:1", "j-cy:1"]
        found = outbox.store.find("j-bob:1")
        assert found is not None
        assert (found.status, found.detail) == (OutboxStatus.UNKNOWN, UNKNOWN_DETAIL)


def test_a_row_another_dispatch_claimed_is_passed_over(outbox: Outbox) -> None:
    outbox.store.add([outbox.row("ann", "1")], T)
    (row,) = outbox.store.due(T, {CAMPAIGN}, 10)
    with outbox.store.claiming() as mine, outbox.store.claiming() as theirs:
        assert mine.claim([row], T, synced=False) == {row.id}
        assert theirs.claim([row], T, synced=False) == set()  # read pending, taken since
        theirs.settle(row, T, OutboxStatus.FAILED, "not mine", synced=False)
        theirs.flush()  # names the row as its holder claimed it: no such row
        assert outbox.status("j-ann:1") == (OutboxStatus.SENDING, 1)
        # a live holder keeps its row, whatever the lease says
        assert outbox.store.retake(T, -timedelta(seconds=1), lambda _c: True) == Counter()
        mine.settle(row, T, OutboxStatus.DELIVERED, "", synced=False, provider_id="x")
        mine.flush()
    assert outbox.status("j-ann:1") == (OutboxStatus.DELIVERED, 1)
    assert outbox.store.due(T, {CAMPAIGN}, 10) == []


def test_a_throttled_channel_puts_rows_off_to_its_next_turns(outbox: Outbox) -> None:
    outbox.store.add([outbox.row(user, "1") for user in ("ann", "bob", "cy", "dee")], T)
    provider = Provider()
    done = outbox.dispatcher(provider, rates={"email": Rate(2, 3600)}).dispatch()
    assert done == Counter({"email:delivered": 2, "email:throttled": 2})
    assert provider.calls == ["j-ann:1", "j-bob:1"]
    put_off = [outbox.store.find(f"j-{user}:1") for user in ("cy", "dee")]
    assert all(r is not None and r.status is OutboxStatus.PENDING for r in put_off)
    assert all(
        r is not None and r.detail == "throttled: providers.email.rate is 2/h" for r in put_off
    )
    first, second = (r.next_attempt_at for r in put_off if r is not None)
    assert T + timedelta(minutes=29) < first < second  # spread one interval (30 min) apart
    assert second - first == timedelta(minutes=30)


def test_a_partitions_store_hands_out_its_customers_rows_only(outbox: Outbox) -> None:
    outbox.store.add([outbox.row(user, "1") for user in USERS], T)
    halves = [Partition(0, 2), Partition(1, 2)]
    seen = []
    for half in halves:
        rows = outbox.over(half).due(T, {CAMPAIGN}, 100)
        assert all(half.holds(row.customer_id) for row in rows)
        seen.append({row.key for row in rows})
    assert seen[0].isdisjoint(seen[1])
    assert seen[0] | seen[1] == {f"j-{user}:1" for user in USERS}
    provider = Provider()
    for half in halves:
        outbox.dispatcher(provider, store=outbox.over(half)).dispatch()
    assert sorted(provider.calls) == sorted(f"j-{user}:1" for user in USERS)


def test_a_row_of_a_profile_merged_since_goes_to_the_survivor(outbox: Outbox) -> None:
    outbox.store.add([outbox.row("ann", "1"), outbox.row("bob", "1")], T)
    merge = _identify("ann") | {"messageId": "merge", "traits": {"email": "bob@example.com"}}
    outbox.take_in(merge | {"timestamp": T.isoformat()})  # Ann and Bob: one person
    provider = Provider()
    assert outbox.dispatcher(provider).dispatch() == Counter({"email:delivered": 2})
    assert sorted(provider.calls) == ["j-ann:1", "j-bob:1"]
