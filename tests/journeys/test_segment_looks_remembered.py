"""A segment look skipped because it would repeat the last one changes nothing: on any event
stream, with segment conditions on orders, the cart, consent, traits, the last visit and the time,
and entry rules that keep customers out (audience, cooldown, once, a running journey), the plan
is the same, byte for byte, whether looks are remembered or every look is made in full."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from engine.campaigns.loader import load_campaigns
from engine.campaigns.read_set import customer_reads
from engine.config import ProjectConfig
from engine.journeys import segments
from engine.journeys.plan import plan_text
from engine.journeys.simulate import Simulation, simulation
from tests.durable.harness import accepted_events, make_project, write_messages
from tests.durable.test_simulate_equals_durable import POLICIES, _stream
from tests.journeys.test_partitioned_simulate import signing_in_shoppers

SEGMENTS = {
    "lapsed_visitor": """\
campaign: lapsed-visitor
trigger:
  segment: customer.last_seen_at and customer.last_seen_at < now - days(3)
audience: customer.consent.email
entry: {cooldown: 5d}
steps:
  - send: email
    template: newsletter.html
    subject: We miss you
""",
    "big_cart": """\
campaign: big-cart
trigger:
  segment: customer.cart.value > 30 and customer.consent.email
entry: {while_active: ignore}
steps:
  - wait: 2d
  - send: email
    template: newsletter.html
    subject: Still thinking?
""",
    "loyal": """\
campaign: loyal
trigger:
  segment: customer.orders.count >= 2 or customer.traits.get("vip") == true
entry: {once: true}
steps:
  - send: email
    template: newsletter.html
    subject: Thank you
""",
    "morning": """\
campaign: morning
trigger:
  segment: customer.email and now.hour < 9
entry: {cooldown: 1d}
steps:
  - send: email
    template: newsletter.html
    subject: Good morning
""",
}


def _project(folder: Path) -> Path:
    project = make_project(folder, ["win_back", "abandoned_cart", "welcome_series"])
    for name, text in SEGMENTS.items():
        (project / "campaigns" / f"{name}.yaml").write_text(text)
    return project


def _both(project: Path, events: list[Any]) -> tuple[Simulation, Simulation, int]:
    """The simulation with looks remembered, with every look in full, and how many
    conditions the first recalled rather than evaluated and searched."""
    campaigns = list(load_campaigns([project / "campaigns"]).require().values())
    config = ProjectConfig(policies=POLICIES)
    skipped = 0
    recall = segments.SegmentTriggers._recall

    def counted(self: Any, *args: Any) -> Any:
        nonlocal skipped
        found = recall(self, *args)
        skipped += found is not None
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(segments.SegmentTriggers, "_recall", counted)
        remembered = simulation(campaigns, events, config, None, project / "templates")
        patch.setattr(segments, "REMEMBER_LOOKS", False)
        in_full = simulation(campaigns, events, config, None, project / "templates")
    return remembered, in_full, skipped


def _assert_same(remembered: Simulation, in_full: Simulation) -> None:
    assert plan_text(remembered.plan) == plan_text(in_full.plan)
    assert remembered.triggered == in_full.triggered
    assert remembered.refused == in_full.refused


@settings(
    max_examples=int(os.environ.get("FOLLOWUP_SEGMENT_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stream=_stream(devices=True))
def test_remembered_looks_plan_what_full_looks_plan(
    stream: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("segments")
    project = _project(folder / "project")
    path = write_messages(folder / "events.jsonl", stream)
    events = accepted_events(path)
    remembered, in_full, _skipped = _both(project, events)
    _assert_same(remembered, in_full)


def test_most_looks_of_browsing_shoppers_are_skipped_and_the_plan_is_the_same(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path / "project")
    path = write_messages(tmp_path / "events.jsonl", signing_in_shoppers(4_000))
    events = accepted_events(path)
    remembered, in_full, skipped = _both(project, events)
    _assert_same(remembered, in_full)
    assert len(remembered.plan) > 500
    assert skipped > 1_000  # page views change nothing most conditions read


def test_what_a_condition_reads_is_known_from_fixed_paths_only() -> None:
    def paths(source: str) -> list[str] | None:
        found = customer_reads(source)
        return None if found is None else [".".join(("customer", *path)) for path in found]

    assert paths("customer.orders.last_at and customer.orders.last_at < now - days(90)") == [
        "customer.orders.last_at"
    ]
    assert paths('customer.traits.get("plan") == "pro"') == ["customer.traits"]
    assert paths('customer.traits["plan"] == "pro"') == ["customer.traits.plan"]
    assert paths('customer.email.lower().endswith("@shop.com")') == ["customer.email"]
    assert paths("now.hour < 9") == []
    assert paths("customer | length > 2") is None  # the whole customer
    assert paths("customer.traits[customer.email] == 1") is None  # a computed key


def _once(condition: str) -> str:
    quoted = "'" + condition.replace("'", "''") + "'"
    return (
        f"campaign: c\ntrigger:\n  segment: {quoted}\nentry: {{once: true}}\nsteps:\n"
        "  - send: email\n    template: newsletter.html\n    subject: Hi\n"
    )


# Found by a review: each gave a different plan before the fix (values alike to ``==`` that a
# condition tells apart; ``now`` reaching a filter, a test, ``repr``, a hash)
T0 = "2024-01-01T08:00:00+00:00"
LATER = {"day": "2024-01-02T08:00:00+00:00", "days": "2024-01-05T08:00:00+00:00"}
REVIEWED = [
    ("customer.traits.vip is true", {"vip": 1}, {"vip": True}, "day"),
    ("customer.traits.n is float", {"n": 1}, {"n": 1.0}, "day"),
    ('customer.traits.n|tojson == "false"', {"n": 0}, {"n": False}, "day"),
    ('customer.traits.x|string == "-0.0"', {"x": 0.0}, {"x": -0.0}, "days"),
    (
        (
            "customer.first_seen_at and not ((customer.traits.n is integer and now < "
            "customer.first_seen_at + days(10)) or now < customer.first_seen_at + days(2))"
        ),
        {"n": 1},
        {"n": 1.0},
        "day",
    ),
    ("customer.first_seen_at and ((now - customer.first_seen_at).days|int) >= 3", {}, None, "days"),
    (
        (
            "customer.first_seen_at and ((now - customer.first_seen_at).days is number) and now > "
            "customer.first_seen_at + days(2)"
        ),
        {},
        None,
        "days",
    ),
    ('"2024" not in ([now]|string)', {}, None, "days"),
    ("customer.first_seen_at and now in {customer.first_seen_at + days(1): 1}", {}, None, "day"),
]


@pytest.mark.parametrize(("condition", "first", "second", "later"), REVIEWED)
def test_what_a_review_found(
    tmp_path: Path, condition: str, first: dict[str, Any], second: dict[str, Any] | None, later: str
) -> None:
    """An identify, then a second one (the traits given) or a page view (``None``)."""
    project = make_project(tmp_path / "project", [])
    (project / "campaigns" / "c.yaml").write_text(_once(condition))
    ann = {"userId": "ann", "messageId": "m0", "timestamp": T0, "type": "identify"}
    then: dict[str, Any] = {"userId": "ann", "messageId": "m1", "timestamp": LATER[later]}
    if second is None:
        then |= {"type": "page", "name": "Home"}
    else:
        then |= {"type": "identify", "traits": second}
    messages = [ann | {"traits": {"email": "ann@example.com", **first}}, then]
    path = write_messages(tmp_path / "events.jsonl", messages)
    events = accepted_events(path)
    remembered, in_full, _skipped = _both(project, events)
    _assert_same(remembered, in_full)


NOTE_HISTORY = """\
campaign: note-history
trigger: {event: Signed Up}
steps:
  - update:
      traits:
        recent: 'customer.traits.history|reverse'
"""


def _at(minutes: int) -> str:
    return f"2024-01-01T{8 + minutes // 60:02d}:{minutes % 60:02d}:00+00:00"


@pytest.mark.parametrize("case", ["uncalled method", "iterator"])
def test_what_a_second_review_found(tmp_path: Path, case: str) -> None:
    """``now.date`` without its call (a method, equal only to itself), and an iterator an
    ``update`` step stored (the same ``repr`` once read): neither is recalled. (An update step
    now stores a list, as the database does: tests/durable/test_update_values_stored.py.)"""
    project = make_project(tmp_path / "project", [])
    ann = {"userId": "ann", "type": "identify", "timestamp": _at(0), "messageId": "m0"}
    traits: dict[str, Any] = {"email": "ann@example.com"}
    pages = [
        {"userId": "ann", "type": "page", "name": "Home", "messageId": f"p{n}", "timestamp": at}
        for n, at in enumerate([_at(20), _at(90)] if case == "uncalled method" else [])
    ]
    if case == "uncalled method":
        condition = "customer.last_seen_at and now.date == customer.last_seen_at.date"
        entry = "{}"
    else:
        condition = '(customer.traits.recent|first) == "pro"'
        entry = "{cooldown: 1h}"
        traits["history"] = ["pro", "pro", "free", "pro", "pro", "free"] * 3
        (project / "campaigns" / "note_history.yaml").write_text(NOTE_HISTORY)
        signup = {"userId": "ann", "type": "track", "event": "Signed Up", "messageId": "s"}
        pages = [signup | {"timestamp": _at(1)}] + [
            {"userId": "ann", "type": "page", "name": "Home", "messageId": f"p{hour}"}
            | {"timestamp": f"2024-01-01T{9 + 2 * hour:02d}:05:00+00:00"}
            for hour in range(1, 7)
        ]
    quoted = "'" + condition.replace("'", "''") + "'"
    (project / "campaigns" / "c.yaml").write_text(
        f"campaign: c\ntrigger:\n  segment: {quoted}\nentry: {entry}\nsteps:\n"
        "  - send: email\n    template: newsletter.html\n    subject: Hi\n"
    )
    path = write_messages(tmp_path / "events.jsonl", [ann | {"traits": traits}, *pages])
    remembered, in_full, _skipped = _both(project, accepted_events(path))
    _assert_same(remembered, in_full)
    assert len(in_full.plan) > (2 if case == "uncalled method" else 0)


TAG_AND_SHOW = {
    "tag": """\
campaign: tag
trigger: {event: Order Completed}
steps:
  - update: {traits: {tag: '"x"'}}
""",
    "show": """\
campaign: show
trigger: {event: Product Viewed}
steps:
  - if: customer.traits|list|first == "tag"
    then: [{send: email, template: newsletter.html, subject: tag first}]
    else: [{send: email, template: newsletter.html, subject: b first}]
""",
    "monday": """\
campaign: monday
trigger: {segment: now.weekday() == 0 and now.hour == 9}
entry: {cooldown: 1d}
steps: [{send: email, template: newsletter.html, subject: Monday}]
""",
}


def test_what_a_third_review_found(tmp_path: Path) -> None:
    """A segment on ``now`` alone reads no field of the state: left unfolded, an ``update``
    step's traits and a same-second event's context traits folded in one run, in event order,
    and the traits' keys came out in another order than event by event (``b`` before ``tag``),
    which a later condition saw. Such a condition has the state folded at each look; and the
    traits are kept in the order of their names, however they are folded
    (tests/unit/test_state_fields_changed.py), so a condition listing them reads ``b``."""
    project = make_project(tmp_path / "project", [])
    for name, text in TAG_AND_SHOW.items():
        (project / "campaigns" / f"{name}.yaml").write_text(text)
    at = "2024-01-02T08:30:00Z"
    ann = {"userId": "ann", "type": "track", "timestamp": at}
    messages = [
        ann
        | {"event": "Order Completed", "messageId": "m1"}
        | {"properties": {"order_id": "o1", "revenue": 10}},
        ann | {"event": "Product Viewed", "messageId": "m2", "context": {"traits": {"b": 2}}},
    ]
    path = write_messages(tmp_path / "events.jsonl", messages)
    remembered, in_full, _skipped = _both(project, accepted_events(path))
    _assert_same(remembered, in_full)
    assert "b first" in plan_text(remembered.plan)
