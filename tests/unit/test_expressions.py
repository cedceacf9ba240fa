"""Conditions and templates: checked names with suggestions at load, sandboxed evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from engine.campaigns.expressions import (
    ExpressionError,
    check_expression,
    check_template,
    compile_expression,
    sandbox,
    template_references,
)
from engine.journeys.context import names as scope_names
from engine.state.profile import Cart, CartItem, Consent, CustomerState, Orders

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "source",
    [
        "customer.email and customer.consent.email",
        "event.properties.price > 0",
        "customer.cart.value >= 200",
        "customer.orders.last_at and customer.orders.last_at < now - days(90)",
        "customer.traits.plan == 'pro' and customer.traits.anything.deeper",
        "customer['email'] | length > 3",
        "customer.cart.items | selectattr('price', 'gt', 100) | list | length",
        "customer.cart.items[0].name",
        "'web' in customer.channels",
        "customer.first_name.startswith('A')",
        "event.timestamp > now - hours(2) - minutes(30)",
        "customer.orders.last.total",
        "customer is defined and true",
    ],
)
def test_valid_expressions(source: str) -> None:
    assert check_expression(source) == []
    assert compile_expression(source).source == source


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("customer.emial", "customer.emial is not a profile field; did you mean customer.email?"),
        ("customer['emial']", "customer.emial is not a profile field; did you mean customer.email?"),
        ("custmer.email", "unknown name 'custmer'; did you mean customer?"),
        ("customer.cart.valu > 1", ("customer.cart.valu is not a profile field; did you mean "
         "customer.cart.value?")),
        ("customer.consent.mail", "did you mean customer.consent.email?"),
        ("customer.plan", "or write customer.traits.plan for a trait"),
        ("event.propertes.price", ("event.propertes is not an event field; did you mean "
         "event.properties?")),
        ("event.price", "event data is under event.properties.price"),
        ("gold", "(to write the text gold, quote it: 'gold')"),
        ("customer.email | lenght", "unknown filter 'lenght'; did you mean length?"),
        ("customer is defind", "unknown test 'defind'; did you mean defined?"),
        ("customer.email and", "not a valid expression: unexpected end of text"),
        ("customer.email }} {{ now", "unexpected '}}' after the expression"),
        ("  ", "empty expression"),
    ],
)  # fmt: skip
def test_bad_expressions_say_what_to_write(source: str, message: str) -> None:
    problems = check_expression(source)
    assert any(message in problem for problem in problems), problems
    with pytest.raises(ExpressionError):
        compile_expression(source)


def test_several_problems_are_reported_together() -> None:
    problems = check_expression("custmer.email or customer.frist_name")
    assert len(problems) == 2


def customer(**fields: Any) -> CustomerState:
    return CustomerState(**fields)


def test_evaluation_over_customer_state() -> None:
    state = customer(
        traits={"email": "ann@example.com", "plan": "pro"},
        consent=Consent(email=True),
        cart=Cart(items=(CartItem("p1", "Boots", 120.0, 2),)),
        orders=Orders(count=1, last_at=NOW - timedelta(days=120)),
    )
    names = {"customer": state, "event": None, "now": NOW}
    assert compile_expression("customer.email and customer.consent.email").holds(names)
    assert compile_expression("customer.cart.value >= 200").holds(names)
    assert compile_expression("customer.traits.plan == 'pro'").holds(names)
    win_back = "customer.orders.last_at and customer.orders.last_at < now - days(90)"
    assert compile_expression(win_back).holds(names)
    assert compile_expression("customer.cart.items[0].name").evaluate(names) == "Boots"


def test_missing_values_are_empty_and_false() -> None:
    names = {"customer": customer(), "event": {"properties": {}}, "now": NOW}
    assert not compile_expression("customer.email").holds(names)
    assert not compile_expression("customer.traits.plan.tier").holds(names)
    assert not compile_expression("event.properties.price > 0").holds(names)
    assert not compile_expression("customer.orders.last_at < now - days(90)").holds(names)
    assert compile_expression("event.properties.revenue").evaluate(names) is None


def test_the_sandbox_blocks_unsafe_attributes() -> None:
    names = {"customer": customer(), "event": None, "now": NOW}
    for source in (
        "customer.traits.__class__.__mro__",
        "customer.traits.__class__.__subclasses__()",
        "customer.traits.get.__globals__",
    ):
        with pytest.raises(ExpressionError, match="names starting with _ are private"):
            compile_expression(source)
    # what the check cannot see (a key that names a dunder) the sandbox still refuses
    assert not compile_expression("customer.traits['__class__']").holds(names)


def test_expressions_compare_by_source() -> None:
    assert compile_expression("customer.email") == compile_expression("customer.email")
    assert len({compile_expression("customer.email"), compile_expression("customer.email")}) == 1


def test_templates() -> None:
    ok = (
        "{% for item in customer.cart.items %}{{ loop.index }} {{ item.name }}{% endfor %}\n"
        "{% set total = customer.cart.value %}{{ total }} {{ range(3) | list }}"
    )
    assert check_template(ok) == []
    problems = check_template("Hi\n{{ customer.frist_name }}\n{{ custmer }}")
    assert [(p.line, p.message) for p in problems] == [
        (3, "unknown name 'custmer'; did you mean customer?"),
        (2, "customer.frist_name is not a profile field; did you mean customer.first_name?"),
    ]
    [syntax] = check_template("line 1\n{% if customer.email %}\n{{ x }")
    assert syntax.line == 3 and syntax.message.startswith("not a valid template")
    [unknown_filter] = check_template("\n\n{{ customer.email | upcase }}")
    assert unknown_filter.line == 3 and "unknown filter 'upcase'" in unknown_filter.message


def test_template_references() -> None:
    source = '{% extends "base.html" %}{% include "parts/footer.html" %}{% include name %}'
    assert template_references(source) == ["base.html", "parts/footer.html"]
    assert template_references("{% if %}") == []


def test_tojson_writes_a_webhook_body_that_stays_json() -> None:
    """docs/channels.md: values written with ``| tojson`` keep a JSON body valid whatever the
    customer typed; a missing value is ``null`` (empty, as elsewhere), a time its ISO text."""
    at = datetime(2024, 5, 6, 9, tzinfo=UTC)
    state = CustomerState(traits={"first_name": 'Zoë "Q" <b>'}, first_seen_at=at)
    body = (
        '{"name": {{ customer.first_name | tojson }}, "last": {{ customer.last_name | tojson }},'
        ' "seen": {{ customer.first_seen_at | tojson }}, "deep": {{ customer.x.y | tojson }}}'
    )
    rendered = sandbox().from_string(body).render(**scope_names("c1", state, None, at))
    assert orjson.loads(rendered) == {
        "name": 'Zoë "Q" <b>',
        "last": None,
        "seen": "2024-05-06T09:00:00+00:00",
        "deep": None,
    }
