"""A journey keeps the campaign version it entered with; pausing holds it; an unsubscribe
stops a send already decided; on PostgreSQL two workers share the work with no double send."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.api import Followup
from engine.durable.project import DurableProject
from engine.storage.tables import journeys, outbox
from tests.durable.harness import Clock, make_project, open_followup

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
CAMPAIGN = "campaigns/abandoned_cart.yaml"


def _shopper(followup: Followup, user: str, at: datetime) -> None:
    followup.identify(
        user_id=user,
        traits={
            "email": f"{user}@example.com",
            "firstName": user.title(),
            "consent": {"email": True},
        },
        timestamp=at - timedelta(minutes=5),
    )
    followup.track(
        "Product Added", user_id=user, properties={"product_id": "p", "price": 30}, timestamp=at
    )


def _edit(project: Path, old: str, new: str) -> None:
    file = project / CAMPAIGN
    file.write_text(file.read_text().replace(old, new))


def _sends(followup: Followup) -> list[tuple[str, str, str]]:
    with followup.engine.connect() as conn:
        rows = conn.execute(sa.select(outbox).where(outbox.c.channel == "email"))
        return sorted((r.customer_id, r.fields["subject"], r.status) for r in rows)


@pytest.fixture
def shop(tmp_path: Path) -> tuple[Path, Followup, Clock]:
    project = make_project(tmp_path, ["abandoned_cart"])
    clock = Clock(T0)
    followup = open_followup(project, f"sqlite:///{tmp_path / 'f.db'}", clock)
    yield project, followup, clock
    followup.close()


def test_a_journey_keeps_the_version_it_entered_with(shop: tuple[Path, Followup, Clock]) -> None:
    project, followup, clock = shop
    _shopper(followup, "ann", T0)
    DurableProject(followup).run_once()
    _edit(project, "you left", "come back for")
    clock.now = T0 + timedelta(hours=2)
    _shopper(followup, "cat", clock.now)
    edited = DurableProject(followup)
    edited.run_once()
    clock.now = T0 + timedelta(hours=4)
    edited.run_once()
    sends = _sends(followup)
    ann = [subject for customer, subject, _ in sends if "you left" in subject]
    cat = [subject for customer, subject, _ in sends if "come back for" in subject]
    assert ann == ["Ann, you left 1 item behind"]
    assert cat == ["Cat, come back for 1 item behind"]
    with followup.engine.connect() as conn:
        versions = set(conn.execute(sa.select(journeys.c.campaign_version)).scalars())
    assert len(versions) == 2


def test_pausing_holds_journeys_and_entries(shop: tuple[Path, Followup, Clock]) -> None:
    project, followup, clock = shop
    _shopper(followup, "ann", T0)
    DurableProject(followup).run_once()
    _edit(project, "status: active", "status: paused")
    clock.now = T0 + timedelta(hours=3)
    _shopper(followup, "cat", clock.now)
    paused = DurableProject(followup).run_once()
    assert _sends(followup) == []
    assert paused.engine.decisions.get("enter", 0) == 0  # no new entries while paused
    _edit(project, "status: paused", "status: active")
    clock.now = T0 + timedelta(hours=5)
    DurableProject(followup).run_once()
    assert [(subject, status) for _c, subject, status in _sends(followup)] == [
        ("Ann, you left 1 item behind", "delivered")
    ]


def test_an_unsubscribe_stops_a_send_already_decided(shop: tuple[Path, Followup, Clock]) -> None:
    _project, followup, clock = shop
    _shopper(followup, "ann", T0)
    durable = DurableProject(followup)
    durable.run_once()
    clock.now = T0 + timedelta(hours=2)
    durable.runtime.tick()  # the email is decided: an outbox row, not yet delivered
    assert [status for *_rest, status in _sends(followup)] == ["pending"]
    followup.track("Unsubscribed", user_id="ann", properties={"channel": "email"})
    durable.dispatcher.dispatch()
    with followup.engine.connect() as conn:
        row = conn.execute(sa.select(outbox)).one()
    assert (row.status, row.detail) == ("skipped", "no_consent")


@pytest.mark.external_service
def test_two_workers_share_the_work_without_double_sends(
    empty_postgres: str, tmp_path: Path
) -> None:
    project = make_project(tmp_path, ["abandoned_cart"])
    clock = Clock(T0)
    setup = open_followup(project, empty_postgres, clock)
    try:
        for number in range(60):
            _shopper(setup, f"shopper{number:02d}", T0 + timedelta(seconds=number))
    finally:
        setup.close()
    clock.now = T0 + timedelta(hours=30)
    workers = [open_followup(project, empty_postgres, clock) for _ in range(2)]
    problems: list[BaseException] = []

    def work(followup: Followup) -> None:
        try:
            durable = DurableProject(followup)
            durable.runtime.batch_size = 7
            durable.dispatcher.batch_size = 5
            for _ in range(3):
                durable.run_once()
        except BaseException as exc:  # noqa: BLE001 - reported below
            problems.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert problems == []
        with workers[0].engine.connect() as conn:
            rows = list(conn.execute(sa.select(outbox.c.key, outbox.c.status)))
            entered = conn.scalar(sa.select(sa.func.count()).select_from(journeys))
        assert entered == 60
        assert rows and {status for _key, status in rows} == {"delivered"}
        files = list((project / "outbox" / "email").glob("*.eml"))
        assert len(files) == sum(1 for key, _ in rows if key.endswith(":1"))
    finally:
        for followup in workers:
            followup.close()
