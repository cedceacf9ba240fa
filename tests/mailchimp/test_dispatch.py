"""The Mailchimp provider behind the real durable runtime and ``OutboxDispatcher``: welcome emails
to seven customers, each meeting a different fault at the stand-in. The engine must retry the
transient ones at the provider's ``retry_at``, record permanent failures with their reason, and
report unknown sends without ever resending them; consent changes reach the member status."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.durable.project import DurableProject
from engine.storage.tables import outbox
from integrations.mailchimp import subscriber_hash
from tests.durable.harness import Clock, make_project, open_followup
from tests.mailchimp.conftest import ENVIRON, SETTINGS, make_provider
from tests.mailchimp.standin import RETRY_AFTER_SECONDS, StandIn

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
# customer -> the faults their welcome email meets, in order
FAULTS = {
    "ann": [("send", "429")],
    "bob": [("send", "500"), ("send", "500")],
    "cid": [("send", "hang")],
    "dan": [("send", "reset")],
    "eve": [("member", "400")],
    "fay": [],
    "gus": [],  # bounced: Transactional rejects the address
}


@pytest.fixture
def shop(tmp_path: Path, stand_in: StandIn) -> Iterator[tuple[Followup, DurableProject, Clock]]:
    clock = Clock(T0)
    project = make_project(tmp_path, ["welcome_series"])
    followup = open_followup(project, f"sqlite:///{tmp_path / 'f.db'}", clock)
    durable = DurableProject(followup)
    provider = make_provider(stand_in.url, f"{stand_in.url}/api/1.3", clock=clock, timeout=0.5)
    durable.dispatcher.providers = {**durable.dispatcher.providers, "email": provider}
    durable.runtime.consent_channels = frozenset({"email"})
    yield followup, durable, clock
    followup.close()


def _rows(followup: Followup) -> dict[str, tuple[str, str, int]]:
    """``customer name -> (status, detail, attempts)`` of the welcome emails."""
    names = {followup.customer_id(name): name for name in FAULTS}
    query = sa.select(outbox).where(outbox.c.channel == "email", outbox.c.action == "send")
    with followup.engine.connect() as conn:
        rows = list(conn.execute(query))
    found = {names[row.customer_id]: (row.status, row.detail or "", row.attempts) for row in rows}
    assert len(found) == len(rows)  # one welcome each
    return found


def _expect(rows: dict[str, tuple[str, str, int]], **wanted: tuple[str, str, int]) -> None:
    for name, (status, detail, attempts) in wanted.items():
        if name in rows:  # a customer in the campaign's holdout gets no welcome at all
            assert rows[name][0] == status and rows[name][2] == attempts, (name, rows[name])
            assert rows[name][1].startswith(detail), (name, rows[name])


def test_faults_through_the_dispatcher_end_delivered_once_failed_or_unknown(
    shop: tuple[Followup, DurableProject, Clock], stand_in: StandIn
) -> None:
    followup, durable, clock = shop
    world = stand_in.world
    world.bounced.add("gus@example.com")
    for name, faults in FAULTS.items():
        email = f"{name}@example.com"
        for operation, fault in faults:
            world.faults.setdefault((operation, email), []).append(fault)
        followup.identify(
            user_id=name,
            traits={"email": email, "first_name": name.title(), "consent": {"email": True}},
            timestamp=T0 - timedelta(minutes=2),
        )
        followup.track("Subscribed", user_id=name, properties={"list": "newsletter"}, timestamp=T0)
    durable.run_once()
    rows = _rows(followup)
    assert len(rows) >= 5  # the 10% holdout may keep a customer or two out
    unknown = "no answer after the request was sent, it may have gone out"
    _expect(
        rows,
        ann=("pending", "429 RequestLimitExceeded", 1),
        bob=("pending", "500 GeneralError", 1),
        cid=("unknown", unknown, 1),
        dan=("unknown", unknown, 1),
        eve=("failed", "400 Invalid Resource: Your merge fields were invalid.; FNAME: ", 1),
        fay=("delivered", "transactional: sent", 1),
        gus=("skipped", "suppressed: rejected: hard-bounce", 1),
    )
    with followup.engine.connect() as conn:
        due = dict(
            conn.execute(
                sa.select(outbox.c.customer_id, outbox.c.next_attempt_at).where(
                    outbox.c.status == "pending"
                )
            ).all()
        )
    retry_at = {followup.customer_id("ann"): T0 + timedelta(seconds=RETRY_AFTER_SECONDS)}
    retry_at[followup.customer_id("bob")] = T0 + timedelta(seconds=30)  # the first backoff
    assert {customer: due[customer] for customer in retry_at if customer in due} == {
        customer: at for customer, at in retry_at.items() if customer in due
    }

    for seconds in (8, 31, 95, 600):  # past ann's Retry-After, then bob's 30 s and 60 s backoffs
        clock.now = T0 + timedelta(seconds=seconds)
        durable.run_once()
    _expect(
        _rows(followup),
        ann=("delivered", "transactional: sent", 2),
        bob=("delivered", "transactional: sent", 3),
        cid=("unknown", unknown, 1),  # reported, never resent
        dan=("unknown", unknown, 1),
        eve=("failed", "400 Invalid Resource", 1),
        fay=("delivered", "transactional: sent", 1),
        gus=("skipped", "suppressed: rejected: hard-bounce", 1),
    )
    # what reached "Mailchimp": each delivered welcome once, cid's (which went) once, no more
    went = {"ann", "bob", "cid", "fay"} & set(rows)
    assert world.sent == {f"{name}@example.com": 1 for name in went}
    assert all(m["subject"].startswith("Welcome") for m in world.messages)
    keys = [m["headers"]["X-Followup-Key"] for m in world.messages]
    assert len(keys) == len(set(keys)) == len(went)


def test_an_unsubscribe_reaches_the_member_through_the_dispatcher(
    shop: tuple[Followup, DurableProject, Clock], stand_in: StandIn
) -> None:
    followup, durable, clock = shop
    followup.identify(
        user_id="ann",
        traits={"email": "ann@example.com", "consent": {"email": True}},
        timestamp=T0 - timedelta(minutes=2),
    )
    followup.track(
        "Unsubscribed",
        user_id="ann",
        properties={"channel": "email"},
        timestamp=T0,
        message_id="u1",
    )
    stand_in.world.faults[("member", "ann@example.com")] = ["500"]
    durable.run_once()  # the member PUT meets a 500: retried, not lost
    clock.now = T0 + timedelta(minutes=5)
    durable.run_once()
    member = stand_in.world.members[subscriber_hash("ann@example.com")]
    assert member["status"] == "unsubscribed"
    with followup.engine.connect() as conn:
        query = sa.select(outbox.c.status, outbox.c.attempts).where(outbox.c.action == "consent")
        rows = conn.execute(query).all()
    # two changes (the identify's consent, the unsubscribe), each sent the consent as it stands
    # now; the one that met the 500 took a second attempt
    assert sorted(rows) == [("delivered", 1), ("delivered", 2)]


def test_retries_are_dated_on_the_pass_clock_when_it_runs_ahead(
    tmp_path: Path, stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``followup tick --now`` a year ahead of the wall clock, the provider built from
    followup.yaml as ``tick`` builds it: a send meeting 500s is retried 30 s later on the pass's
    clock, not at once (dated by the wall clock, every retry was due already and the pass burned
    all 8 attempts in a few seconds)."""
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    ahead = Clock(datetime.now(UTC).replace(microsecond=0) + timedelta(days=365))
    project = make_project(tmp_path, [])
    (project / "campaigns" / "welcome.yaml").write_text(
        "campaign: welcome\ntrigger: {event: Subscribed}\nsteps:\n"
        "  - send: email\n    template: welcome.html\n    subject: Welcome\n"
    )
    email = {**SETTINGS, "host": stand_in.url, "transactional_host": f"{stand_in.url}/api/1.3"}
    config = ProjectConfig(
        database_url=f"sqlite:///{tmp_path / 'f.db'}", providers={"email": email}
    )
    followup = Followup(Project(config, project), ahead)
    try:
        stand_in.world.faults[("send", "ann@example.com")] = ["500"] * 8
        followup.identify(
            user_id="ann",
            traits={"email": "ann@example.com", "consent": {"email": True}},
            timestamp=ahead.now - timedelta(minutes=2),
        )
        followup.track("Subscribed", user_id="ann", timestamp=ahead.now - timedelta(minutes=1))
        durable = DurableProject(followup)
        durable.run_once()
        query = sa.select(outbox).where(outbox.c.action == "send")
        with followup.engine.connect() as conn:
            row = conn.execute(query).one()
    finally:
        followup.close()
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == ahead.now + timedelta(seconds=30)  # the first backoff
    assert stand_in.world.sent == {}
