"""``simulate`` split between processes: groups of linked identities stay whole, and the
simulation of the parts, merged, is the simulation of the whole, to the byte."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from engine.campaigns.loader import load_campaigns
from engine.config import ProjectConfig
from engine.events import Event, parse_message
from engine.ingest.jsonl import read_jsonl
from engine.journeys import partitioned
from engine.journeys import simulate as simulate_module
from engine.journeys.partitioned import identity_groups, run_forked, split
from engine.journeys.plan import plan_text
from engine.journeys.simulate import Simulation, merged, simulation
from engine.rendering import TemplateFault
from tests.durable.harness import make_project, write_messages
from tests.durable.test_simulate_equals_durable import BROWSE_NUDGE, POLICIES, _stream

START = datetime(2024, 5, 1, 10, tzinfo=UTC)


def ev(minute: int, **fields: Any) -> Event:
    message: dict[str, Any] = {
        "type": "track",
        "event": "Product Viewed",
        "timestamp": (START + timedelta(minutes=minute)).isoformat(),
        "messageId": f"m{minute}",
        **fields,
    }
    [event] = parse_message(message)
    return event


def test_events_linked_by_any_key_are_one_group_even_through_later_events() -> None:
    events = [
        ev(0, anonymousId="a1"),
        ev(1, userId="u1"),
        ev(2, anonymousId="a2"),
        ev(3, userId="u2", anonymousId="a2"),
        ev(4, anonymousId="a1", traits={"email": "Ann@Example.com"}, type="identify"),
        ev(5, userId="u1", traits={"email": "ann@example.com"}, type="identify"),  # a1 ~ u1
        ev(6, anonymousId="a1"),
    ]
    groups = identity_groups(events)
    assert groups[0] == groups[1] == groups[4] == groups[5] == groups[6]
    assert groups[2] == groups[3]
    assert groups[0] != groups[2]


def test_a_split_keeps_each_group_in_one_part_in_the_order_given() -> None:
    events = [ev(minute, anonymousId=f"a{minute % 7}") for minute in range(70)]
    events.append(ev(70, userId="u", anonymousId="a3", traits={"x": 1}, type="identify"))
    parts = split(events, 3)
    assert len(parts) == 3
    assert sorted(e.message_id for part in parts for e in part) == sorted(
        e.message_id for e in events
    )
    for part in parts:
        assert part == sorted(part, key=events.index)
    owner = {e.anonymous_id or e.user_id: index for index, part in enumerate(parts) for e in part}
    for index, part in enumerate(parts):
        assert {owner[e.anonymous_id or e.user_id] for e in part} == {index}
    sizes = sorted(len(part) for part in parts)
    assert sizes[-1] - sizes[0] <= 11  # whole groups of 10 (and 11), dealt to the lightest


def test_fewer_groups_than_parts_give_fewer_parts() -> None:
    events = [ev(minute, userId="u1") for minute in range(5)]
    assert split(events, 4) == [events]


def test_a_part_that_fails_in_its_process_fails_the_run() -> None:
    def run(part: list[int]) -> int:
        if part == [2]:
            raise ValueError("part two")
        return part[0]

    with pytest.raises(ValueError, match="part two"):
        run_forked(run, [[1], [2]])
    assert run_forked(run, [[1], [3], [4]]) == [1, 3, 4]
    assert partitioned._job is None


def _parts_pid(part: list[int]) -> int:
    return os.getpid()


def test_the_first_part_runs_here_and_the_others_in_other_processes() -> None:
    pids = run_forked(_parts_pid, [[1], [2], [3]])
    assert pids[0] == os.getpid()
    assert os.getpid() not in pids[1:]  # two processes; one may take both parts


# a template that cannot render for a customer without a first name: render_error skips,
# and a fault to report, met at different times in different parts
STRICT_NAME = "{{ customer.traits.first_name.upper() }} {{ unsubscribe_url }}"


def _project(folder: Path) -> Path:
    project = make_project(folder)
    (project / "campaigns" / "browse_nudge.yaml").write_text(BROWSE_NUDGE)
    (project / "templates" / "cross_sell.html").write_text(STRICT_NAME)
    return project


def _compared(project: Path, events: list[Event], workers: int) -> tuple[Simulation, Simulation]:
    campaigns = list(load_campaigns([project / "campaigns"]).require().values())
    config = ProjectConfig(policies=POLICIES)
    templates = project / "templates"
    watch = frozenset({"Order Completed"})
    alone = simulation(campaigns, events, config, None, templates, watch, workers=1)
    split_up = simulation(campaigns, events, config, None, templates, watch, workers=workers)
    return alone, split_up


@settings(
    max_examples=int(os.environ.get("FOLLOWUP_PARTITION_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stream=_stream(devices=True))
def test_the_parts_merged_are_the_whole_simulation(
    stream: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("partitioned")
    project = _project(folder / "project")
    path = write_messages(folder / "events.jsonl", stream)
    events = [e for r in read_jsonl(path) for e in getattr(r, "events", [])]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(simulate_module, "PARALLEL_FROM", 0)
        alone, split_up = _compared(project, events, workers=3)
    assert plan_text(split_up.plan) == plan_text(alone.plan)
    assert [(line.at, line.journey) for line in split_up.plan] == [
        (line.at, line.journey) for line in alone.plan
    ]
    assert split_up.triggered == alone.triggered
    assert split_up.where_refused == alone.where_refused
    assert split_up.refused == alone.refused
    assert split_up.render_problems == alone.render_problems
    assert split_up.owners == alone.owners
    assert split_up.merged_into == alone.merged_into


def signing_in_shoppers(count: int) -> list[dict[str, Any]]:
    """``count`` messages of 1,500 shoppers browsing, carting and ordering, each signing in now
    and then with a userId and an email shared with others (groups of 15 merged profiles);
    a third of the groups never give a first name."""
    messages = []
    for number in range(count):
        shopper = number % 1_500
        at = START + timedelta(minutes=number // 3)
        message: dict[str, Any] = {
            "messageId": f"m{number}",
            "timestamp": at.isoformat(),
            "anonymousId": f"device-{shopper}",
        }
        if (number // 1_500) % 8 == 0:  # each shopper signs in now and then: merges
            message |= {"type": "identify", "userId": f"user-{shopper % 700}"}
            consent = {"email": True, "ads": True, "call": shopper % 2 == 0}
            message["traits"] = {"email": f"s{shopper % 900}@example.com", "consent": consent}
            if shopper % 100 >= 30:  # the groups (shopper mod 100) below: no name
                message["traits"]["first_name"] = "Sam"
        elif number % 7 == 0:
            message |= {"type": "track", "event": "Product Added"}
            message["properties"] = {"product_id": "p1", "price": 20}
        elif number % 23 == 0:
            message |= {"type": "track", "event": "Order Completed"}
            message["properties"] = {"order_id": f"o{number}", "revenue": 80}
        else:
            message |= {"type": "track", "event": "Product Viewed"}
        messages.append(message)
    return messages


def test_a_large_run_is_split_and_the_same(tmp_path: Path) -> None:
    """Above PARALLEL_FROM events, workers=2 really splits: the same plan and figures."""
    messages = signing_in_shoppers(partitioned.PARALLEL_FROM + 2_000)
    path = write_messages(tmp_path / "events.jsonl", messages)
    events = [e for r in read_jsonl(path) for e in getattr(r, "events", [])]
    assert len(split(events, 2)) == 2
    alone, split_up = _compared(_project(tmp_path / "project"), events, workers=2)
    assert len(alone.plan) > 1_000
    assert alone.merged_into and alone.render_problems
    assert plan_text(split_up.plan) == plan_text(alone.plan)
    assert (split_up.triggered, split_up.refused) == (alone.triggered, alone.refused)
    assert split_up.owners == alone.owners


def test_merged_keeps_each_templates_earliest_fault_in_the_order_met() -> None:
    def fault(message: str) -> TemplateFault:
        return TemplateFault("templates/x.html", 1, message)

    late, early = START + timedelta(hours=2), START + timedelta(hours=1)
    first = Simulation(
        [],
        render_problems={"a.html": fault("a late"), "b.html": fault("b late, ann")},
        render_problems_at={"a.html": (late, "c_2"), "b.html": (late, "c_1")},
    )
    second = Simulation(
        [],
        render_problems={"b.html": fault("b early"), "c.html": fault("c")},
        render_problems_at={"b.html": (early, "c_9"), "c.html": (late, "c_1")},
    )
    whole = merged([first, second])
    assert [(t, f.message) for t, f in whole.render_problems.items()] == [
        ("b.html", "b early"),
        ("c.html", "c"),
        ("a.html", "a late"),
    ]


def test_the_fault_shown_does_not_hang_on_the_order_of_one_instant(tmp_path: Path) -> None:
    """Two customers fail one template at the same second, on different lines: the fault kept
    is the first customer's by id, in one process (whatever their arrival) and split."""
    campaign = "campaign: t\ntrigger: {event: Product Viewed}\nsteps:\n"
    campaign += "  - send: email\n    template: t.html\n    subject: hi\n"
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "campaigns" / "t.yaml").write_text(campaign)
    (tmp_path / "templates" / "t.html").write_text(
        "{{ customer.traits.a.upper() }}\n{{ customer.traits.b.upper() }}\n"
    )
    campaigns = list(load_campaigns([tmp_path / "campaigns"]).require().values())
    shown = set()
    for order in (("zed", "amy"), ("amy", "zed")):
        events = []
        for who, trait in (("zed", {"a": "x"}), ("amy", {"b": "y"})):
            traits = {"email": f"{who}@example.com", "consent": {"email": True}, **trait}
            events += parse_message(
                {"type": "identify", "userId": who, "messageId": f"i-{who}", "traits": traits,
                 "timestamp": START.isoformat()}
            )  # fmt: skip
        for who in order:
            events.append(ev(60, userId=who, messageId=f"v-{who}"))
        for workers in (1, 2):
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(simulate_module, "PARALLEL_FROM", 0)
                found = simulation(
                    campaigns, events, ProjectConfig(), None, tmp_path / "templates",
                    workers=workers,
                )  # fmt: skip
            shown.add(str(found.render_problems["t.html"]))
    assert len(shown) == 1


def test_default_workers_count_cpus_and_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    cpus = len(os.sched_getaffinity(0))
    assert 1 <= partitioned.default_workers() <= min(cpus, partitioned.MAX_WORKERS)
    monkeypatch.setattr(partitioned, "_resident_bytes", lambda: 2 << 30)
    monkeypatch.setattr(partitioned, "_available_bytes", lambda: 3 << 30)  # room for one more
    assert partitioned.default_workers() == min(2, cpus)
    monkeypatch.setattr(partitioned, "_available_bytes", lambda: 1 << 30)
    assert partitioned.default_workers() == 1
