"""Warnings on names the sample data never sets: what the sample sets, what campaigns and templates
read, and the rules that compare the two (``followup validate --events``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from engine.api import Followup
from engine.campaigns.expressions import NamePath, expression_paths, template_paths
from engine.campaigns.loader import LoadedCampaign, Problem, load_file
from engine.campaigns.name_warnings import TemplateFile, name_warnings
from engine.campaigns.sample import (
    SampleData,
    read_database_sample,
    read_events_sample,
    sample_of,
)
from engine.campaigns.validate import validate_project
from engine.events import parse_message

# --- what conditions and templates read ---------------------------------------------------------


def paths(found: list[NamePath]) -> list[str]:
    return [str(path) for path in found]


def test_expression_paths_are_the_longest_fixed_paths() -> None:
    source = (
        "customer.traits.plan == 'pro' and event.properties['price'] > 0 "
        "and customer.cart.items | length and customer.traits.tier.level"
    )
    assert paths(expression_paths(source)) == [
        "customer.traits.plan",
        "event.properties.price",
        "customer.cart.items",
        "customer.traits.tier.level",
    ]


def test_methods_read_their_object_and_get_reads_its_key() -> None:
    source = "customer.email.lower() and customer.traits.get('plan') and event.properties.get(k)"
    assert paths(expression_paths(source)) == [
        "customer.email",
        "customer.traits.plan",
        "event.properties",
    ]


def test_paths_of_an_invalid_expression_are_none() -> None:
    assert expression_paths("customer.traits.plan ==") == []
    assert expression_paths("") == []


def test_template_paths_have_lines_and_skip_names_the_template_sets() -> None:
    text = (
        "Hi {{ customer.traits.nickname }}\n"
        "{% for item in customer.cart.items %}{{ item.name }}{% endfor %}\n"
        "{{ event.properties.coupon }}\n"
    )
    assert template_paths(text) == [
        NamePath(1, ("customer", "traits", "nickname")),
        NamePath(2, ("customer", "cart", "items")),
        NamePath(3, ("event", "properties", "coupon")),
    ]
    shadowed = "{% set event = {'properties': {}} %}{{ event.properties.x }}{{ customer.id }}"
    assert paths(template_paths(shadowed)) == ["customer.id"]
    assert template_paths("{{ customer.traits.x }") == []


# --- what the sample sets -----------------------------------------------------------------------

MESSAGES: list[dict[str, Any]] = [
    {
        "type": "track",
        "event": "Product Added",
        "userId": "u1",
        "timestamp": "2024-05-01T10:00:00Z",
        "properties": {"product_id": "p1", "price": 10},
        "context": {"traits": {"loyaltyTier": "gold"}},
    },
    {
        "type": "track",
        "event": "Product Added",
        "userId": "u2",
        "timestamp": "2024-05-01T10:01:00Z",
        "properties": {"sku": "s2"},
    },
    {
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "timestamp": "2024-05-01T11:00:00Z",
    },
    {
        "type": "identify",
        "userId": "u1",
        "timestamp": "2024-05-01T09:00:00Z",
        "traits": {"email": "ann@example.com", "firstName": "Ann", "consent": {"email": True}},
    },
    {
        "type": "page",
        "name": "Home",
        "userId": "u1",
        "timestamp": "2024-05-01T09:01:00Z",
        "properties": {"path": "/"},
    },
]

EXPECTED = SampleData(
    "sample",
    {
        "Product Added": frozenset({"product_id", "price", "sku"}),
        "Order Completed": frozenset(),
    },
    frozenset({"email", "first_name", "loyalty_tier"}),
)


def events_of(messages: list[dict[str, Any]]) -> list[Any]:
    return [event for message in messages for event in parse_message(message)]


def test_the_sample_sets_track_names_their_properties_and_traits_as_profiles_keep_them() -> None:
    sample = sample_of(events_of(MESSAGES), "sample")
    assert sample == EXPECTED
    assert sample.event_names == {"Product Added", "Order Completed"}  # a page is no event name


def write_jsonl(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_a_jsonl_sample_warns_on_rejected_lines(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    good = [orjson.dumps(message) for message in MESSAGES]
    nameless = orjson.dumps({"type": "track", "userId": "u", "timestamp": "2024-05-01T10:00:00Z"})
    path = write_jsonl(tmp_path / "events.jsonl", [good[0], nameless, *good[1:], b"{oops"])
    sample, findings = read_events_sample(path)
    assert sample == SampleData("events.jsonl", EXPECTED.properties, EXPECTED.traits)
    assert [str(finding) for finding in findings] == [
        (
            "events.jsonl:2:1: warning: 2 lines are not valid events; the sample leaves them out "
            "(this one: event: track needs an event name)"
        )
    ]


def test_a_missing_or_empty_jsonl_gives_no_sample(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    assert read_events_sample(Path("nope.jsonl")) == (
        None,
        [Problem("nope.jsonl", 1, 1, "no such events file")],
    )
    empty = write_jsonl(tmp_path / "empty.jsonl", [b""])
    sample, findings = read_events_sample(empty)
    assert sample is None
    assert [str(finding) for finding in findings] == [
        "empty.jsonl:1:1: warning: no events in the file, so no names were checked against it"
    ]


def test_the_database_sample_is_the_latest_events_of_the_log(
    followup: Followup, database_url: str
) -> None:
    assert read_database_sample(database_url) is None  # no events yet
    followup.ingest_messages(MESSAGES)
    sample = read_database_sample(database_url)
    assert sample is not None
    assert (sample.properties, sample.traits) == (EXPECTED.properties, EXPECTED.traits)
    latest = read_database_sample(database_url, limit=2)  # the page and the identify
    assert latest is not None
    assert latest.source.startswith("the latest 2 events of ")
    assert latest.properties == {} and latest.traits == {"email", "first_name"}


def test_no_database_is_no_sample_and_none_is_created(tmp_path: Path) -> None:
    assert read_database_sample(f"sqlite:///{tmp_path / 'followup.db'}") is None
    assert read_database_sample("sqlite:///:memory:") is None
    assert read_database_sample("mysql://nobody@127.0.0.1/none") is None
    assert list(tmp_path.iterdir()) == []


# --- the rules ----------------------------------------------------------------------------------

SAMPLE = SampleData(
    "events.jsonl",
    {
        "Product Added": frozenset({"product_id", "price", "quantity"}),
        "Order Completed": frozenset({"order_id", "revenue"}),
        "Subscribed": frozenset({"list"}),
        "Email Opened": frozenset({"campaign"}),
    },
    frozenset({"email", "first_name", "plan"}),
)


def campaign(tmp_path: Path, text: str, name: str = "c.yaml") -> LoadedCampaign:
    path = tmp_path / name
    path.write_text(text)
    loaded, problems = load_file(path)
    assert loaded is not None, problems
    return loaded


def warnings_of(
    loaded: list[LoadedCampaign], templates: tuple[TemplateFile, ...] = ()
) -> list[str]:
    found = name_warnings(loaded, SAMPLE, templates)
    assert all(finding.severity == "warning" for finding in found)
    return [f"{f.line}:{f.column}: {f.message}" for f in found]


def test_event_names_the_sample_lacks(tmp_path: Path) -> None:
    text = """\
campaign: c
trigger:
  event: Prodcut Added
exit:
  - event: Unsubscribed
  - event: Order Refunded
goal:
  event: order completed
steps:
  - wait: {for: Email Opend, timeout: 1d}
    then:
      - wait: {for: Subscribed, timeout: 1d}
"""
    assert warnings_of([campaign(tmp_path, text)]) == [
        "3:10: no event named 'Prodcut Added' in events.jsonl; did you mean Product Added?",
        # neither the opposite (Subscribed) nor merely alike (Order Completed) is suggested
        "5:12: no event named 'Unsubscribed' in events.jsonl",
        "6:12: no event named 'Order Refunded' in events.jsonl",
        "8:10: no event named 'order completed' in events.jsonl; did you mean Order Completed?",
        "10:17: no event named 'Email Opend' in events.jsonl; did you mean Email Opened?",
    ]


def test_event_properties_are_those_of_the_event_in_scope(tmp_path: Path) -> None:
    text = """\
campaign: c
trigger:
  event: Product Added
  where: event.properties.price > 0 and event.properties.prices
audience: event.properties.product_id and event.properties.color
goal:
  event: Order Completed
  value: event.properties.revenue + event.properties.price
steps:
  - if: event.properties.quantity > event.properties.revenue
    then:
      - wait: {for: Order Completed, timeout: 1d}
        then:
          - send: email
            template: t.html
            subject: "{{ event.properties.revenue }} {{ event.properties.total }}"
"""
    assert warnings_of([campaign(tmp_path, text)]) == [
        (
            "4:10: event.properties.prices: no 'Product Added' event in events.jsonl has this "
            "property; did you mean event.properties.price?"
        ),
        "5:11: event.properties.color: no 'Product Added' event in events.jsonl has this property",
        (
            "8:10: event.properties.price: no 'Order Completed' event in events.jsonl has this "
            "property"
        ),
        (
            "10:9: event.properties.revenue: no 'Product Added' event in events.jsonl has this "
            "property"
        ),
        (
            "16:22: event.properties.total: no 'Order Completed' or 'Product Added' event in "
            "events.jsonl has this property"
        ),
    ]


def test_no_property_warning_without_an_event_the_sample_has(tmp_path: Path) -> None:
    unknown = """\
campaign: c
trigger:
  event: Call Completed
  where: event.properties.outcome == 'interested'
steps:
  - wait: 1h
"""
    segment = """\
campaign: s
trigger:
  segment: customer.traits.plna == 'pro' and event.properties.anything
steps:
  - wait: 1h
"""
    found = warnings_of([campaign(tmp_path, unknown), campaign(tmp_path, segment, "s.yaml")])
    assert found == [
        "3:10: no event named 'Call Completed' in events.jsonl",
        (
            "3:12: customer.traits.plna: no event in events.jsonl sets this trait, nor does an "
            "update step; did you mean customer.traits.plan?"
        ),
    ]


def test_traits_are_set_by_the_sample_or_an_update_step(tmp_path: Path) -> None:
    text = """\
campaign: c
trigger:
  event: Subscribed
audience: customer.traits.plan and customer.traits.firstName and customer.traits.vip
steps:
  - update:
      traits:
        lastWelcome: now
  - if: customer.traits.last_welcome and customer.traits.coupon
    then:
      - wait: 1h
"""
    # firstName reads the first_name the sample sets (a trait is read by either key)
    assert warnings_of([campaign(tmp_path, text)]) == [
        (
            "4:11: customer.traits.vip: no event in events.jsonl sets this trait, nor does an "
            "update step"
        ),
        (
            "9:9: customer.traits.coupon: no event in events.jsonl sets this trait, nor does an "
            "update step"
        ),
    ]


def test_templates_see_the_event_of_every_send_and_includer(tmp_path: Path) -> None:
    cart = """\
campaign: cart
trigger:
  event: Product Added
steps:
  - send: email
    template: cart.html
    subject: Your cart
"""
    newsletter = """\
campaign: news
trigger:
  schedule: "0 9 * * 1"
audience: customer.email
steps:
  - send: email
    template: news.html
    subject: News
"""
    templates = (
        TemplateFile(
            "cart.html",
            "templates/cart.html",
            "{% include 'footer.html' %}\n{{ event.properties.price }}{{ event.properties.size }}",
        ),
        TemplateFile("footer.html", "templates/footer.html", "\n\n{{ event.properties.sku }}"),
        TemplateFile("news.html", "templates/news.html", "{{ event.properties.anything }}"),
        TemplateFile("unused.html", "templates/unused.html", "{{ customer.traits.tier }}"),
    )
    loaded = [campaign(tmp_path, cart), campaign(tmp_path, newsletter, "news.yaml")]
    found = name_warnings(loaded, SAMPLE, templates)
    assert [str(finding) for finding in found] == [
        (
            "templates/cart.html:2:1: warning: event.properties.size: no 'Product Added' event in "
            "events.jsonl has this property"
        ),
        (
            "templates/footer.html:3:1: warning: event.properties.sku: no 'Product Added' event in "
            "events.jsonl has this property"
        ),
        (
            "templates/unused.html:1:1: warning: customer.traits.tier: no event in events.jsonl "
            "sets this trait, nor does an update step"
        ),
    ]


def test_validate_project_keeps_warnings_apart_from_problems(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "campaigns" / "c.yaml").write_text(
        "campaign: c\ntrigger:\n  event: Product Add\nsteps:\n  - wait: 1h\n"
    )
    events = write_jsonl(tmp_path / "events.jsonl", [orjson.dumps(m) for m in MESSAGES])
    report = validate_project(events=events)
    assert report.ok and report.problems == ()
    assert [str(warning) for warning in report.warnings] == [
        (
            "campaigns/c.yaml:3:10: warning: no event named 'Product Add' in events.jsonl; "
            "did you mean Product Added?"
        )
    ]
    assert report.findings == report.warnings
    assert validate_project().warnings == ()  # no sample, no such warnings
    assert validate_project(sample_database=True).warnings == ()  # no followup.db here
    assert not (tmp_path / "followup.db").exists()
