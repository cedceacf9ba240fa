"""Property: the unified profiles do not depend on the order in which linking events arrive,
nor on how they are cut into batches (events of distinct times: events of one instant apply in
the order received, so for them the arrival order is part of the input)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.api import Followup
from engine.config import Project, ProjectConfig
from engine.events import parse_message
from engine.ingest.pipeline import Accepted
from engine.state.codec import state_to_json
from engine.storage.tables import customers, identities

START = datetime(2024, 5, 1, tzinfo=UTC)
USERS = ["u1", "u2", None]
ANONS = ["a1", "a2", "a3", None]
EMAILS = ["ann@x.com", "bob@x.com", None]


@st.composite
def event_messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=1, max_value=12))
    minutes = draw(st.lists(st.integers(0, 30), min_size=count, max_size=count, unique=True))
    messages = []
    for index in range(count):
        user = draw(st.sampled_from(USERS))
        anon = draw(st.sampled_from(ANONS))
        if user is None and anon is None:
            anon = "a1"
        email = draw(st.sampled_from(EMAILS))
        kind = draw(st.sampled_from(["identify", "Product Added", "Order Completed", "Subscribed"]))
        message: dict[str, Any] = {
            "messageId": f"m{index}",
            "timestamp": (START + timedelta(minutes=minutes[index])).isoformat(),
        }
        if user:
            message["userId"] = user
        if anon:
            message["anonymousId"] = anon
        if kind == "identify":
            message.update(type="identify", traits={"plan": f"p{index}"})
            if email:
                message["traits"]["email"] = email
        else:
            message.update(
                type="track",
                event=kind,
                properties={"product_id": f"p{index % 3}", "price": index, "order_id": f"o{index}"},
            )
            if email:
                message["context"] = {"traits": {"email": email}}
        messages.append(message)
    return messages


def profiles_after(messages: list[dict[str, Any]], batch_size: int) -> set[tuple[Any, ...]]:
    project = Project(ProjectConfig(database_url="sqlite:///:memory:"), Path.cwd())
    followup = Followup(project)
    try:
        followup.ingestor.batch_size = batch_size
        records = [Accepted(parse_message(m), f"t:{i}") for i, m in enumerate(messages)]
        followup.ingestor.ingest(records)
        with followup.engine.connect() as conn:
            keys: dict[str, set[str]] = {}
            for key, owner in conn.execute(sa.select(identities.c.key, identities.c.customer_id)):
                keys.setdefault(owner, set()).add(key)
            live = conn.execute(
                sa.select(customers.c.id, customers.c.state).where(
                    customers.c.merged_into.is_(None)
                )
            ).all()
        assert set(keys) == {cid for cid, _ in live}  # every key points at a live profile
        return {(frozenset(keys[cid]), _content(state)) for cid, state in live}
    finally:
        followup.close()


def _content(data: dict[str, Any]) -> str:
    """A stored state with each order key it keeps (``[microseconds, arrival]``) read as its
    time alone: the arrival part is the log's sequence number, which follows the arrival order
    by definition, and the times here are distinct."""
    from engine.state.codec import state_from_json

    def times(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: times(item) for key, item in value.items()}
        if isinstance(value, list):
            if len(value) == 2 and all(type(part) is int for part in value) and value[0] > 10**12:
                return value[0]
            return [times(item) for item in value]
        return value

    stored = times(state_to_json(state_from_json(data)))
    return orjson.dumps(stored, option=orjson.OPT_SORT_KEYS).decode()  # traits in any order


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), messages=event_messages())
def test_profiles_do_not_depend_on_arrival_order_or_batching(
    data: st.DataObject, messages: list[dict[str, Any]]
) -> None:
    reference = profiles_after(messages, batch_size=len(messages))
    if data.draw(st.booleans(), label="arrive in event-time order"):
        arrival = sorted(messages, key=lambda m: (m["timestamp"], m["messageId"]))
    else:
        arrival = data.draw(st.permutations(messages))
    batch_size = data.draw(st.integers(min_value=1, max_value=len(messages)))
    assert profiles_after(arrival, batch_size) == reference
