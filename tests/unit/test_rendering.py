"""The text part of an email, from its HTML."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.rendering import BodyCheck, html_to_text, render_email
from engine.state.profile import CustomerState


def test_text_part_keeps_blocks_and_links_and_drops_markup() -> None:
    html = (
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        "<p>Hi   Ann,</p><p>Your <b>cart</b>:</p><ul><li>Boots</li><li>Socks</li></ul>"
        '<p><a href="https://shop.example/cart">Return to your cart</a> <a href="#">x</a></p>'
        "</body></html>"
    )
    assert html_to_text(html) == (
        "Hi Ann,\n\nYour cart:\n\nBoots\n\nSocks\n\n"
        "Return to your cart (https://shop.example/cart) x\n"
    )


def test_a_missing_profile_field_renders_empty_not_none(tmp_path: Path) -> None:
    (tmp_path / "hello.html").write_text("<p>Hi {{ customer.first_name }}!</p>")
    scope = {"customer": {"first_name": None, "traits": {}}}
    email = render_email(tmp_path, "hello.html", "{{ customer.first_name }}, a gift", scope)
    assert email.subject == ", a gift"
    assert email.html == "<p>Hi !</p>"
    assert render_email(tmp_path, "hello.html", "{{ customer.traits.x }}", scope).subject == ""


def test_a_body_check_keeps_its_answer_until_the_state_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A template that does not read ``now`` renders once per customer state; one that reads it
    (here through an include) renders at every send; a failure is a fault with its line."""
    (tmp_path / "plain.html").write_text("<p>{{ 10 / customer.traits.visits }}</p>\n")
    (tmp_path / "dated.html").write_text("<p>{% include 'date.html' %}</p>\n")
    (tmp_path / "date.html").write_text("{{ now.year }}\n")
    check = BodyCheck(tmp_path)
    rendered: list[str] = []
    original = check._environment.get_template

    def counting(name: str, *args: Any) -> Any:
        rendered.append(name)
        return original(name, *args)

    monkeypatch.setattr(check._environment, "get_template", counting)
    at = datetime(2024, 5, 6, tzinfo=UTC)
    ann = CustomerState(traits={"visits": 2})
    assert check("plain.html", "ann", ann, None, at)
    assert check("plain.html", "ann", ann, None, at + timedelta(days=7))
    assert check("dated.html", "ann", ann, None, at)
    assert check("dated.html", "ann", ann, None, at + timedelta(days=7))
    assert [name for name in rendered if name != "date.html"] == [
        "plain.html",
        "dated.html",
        "dated.html",
    ]
    assert not check("plain.html", "ann", CustomerState(traits={"visits": 0}), None, at)
    fault = check.problems["plain.html"]
    assert (fault.line, fault.message) == (1, "ZeroDivisionError: division by zero")
