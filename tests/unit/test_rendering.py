"""The text part of an email, from its HTML."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape

from engine.rendering import BodyCheck, _parser_parts, _tree_parts, html_to_text, render_email
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


def test_a_line_break_ends_one_line_and_a_block_closed_by_the_next_ends_too() -> None:
    assert html_to_text("<p>Ann<br>12 Rue Vide<br/>Paris</p>") == "Ann\n12 Rue Vide\nParis\n"
    assert html_to_text("<ul><li>Boots<li>Socks</ul>") == "Boots\n\nSocks\n"
    assert html_to_text("") == html_to_text("   ") == "\n"


def test_what_libxml2_refuses_goes_through_the_standard_parser() -> None:
    html = '<?xml version="1.0" encoding="utf-8"?><p>Hi &amp; welcome</p><p>Bye</p>'
    assert html_to_text(html) == "Hi & welcome\n\nBye\n"


_TEXT = st.text(alphabet=" \t\nab&;<>é€", max_size=8).map(escape)


@st.composite
def _phrasing(draw: st.DrawFn, depth: int = 0) -> str:
    """Inline content: text (escaped), bold and spans, links, line breaks, comments."""
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["text", "b", "span", "a", "br", "comment"]))
        if kind == "text" or depth > 2:
            parts.append(draw(_TEXT))
        elif kind in ("b", "span"):
            parts.append(f"<{kind}>{draw(_phrasing(depth + 1))}</{kind}>")
        elif kind == "a":
            href = draw(st.sampled_from(["https://shop.example/c?a=1&amp;b=2", "#", ""]))
            parts.append(f'<a href="{href}">{draw(_TEXT)}</a>')
        elif kind == "br":
            parts.append("<br>")
        else:
            parts.append(f"<!-- {draw(_TEXT).replace('-', '')} -->")
    return "".join(parts)


@st.composite
def _flow(draw: st.DrawFn, depth: int = 0) -> str:
    """Block content as emails write it: paragraphs and headings of inline content, divs,
    tables and lists of blocks, a style element."""
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["inline", "p", "h1", "div", "table", "ul", "style"]))
        if kind == "inline" or depth > 2:
            parts.append(draw(_phrasing()))
        elif kind in ("p", "h1"):
            parts.append(f"<{kind}>{draw(_phrasing())}</{kind}>")
        elif kind == "div":
            parts.append(f"<div>{draw(_flow(depth + 1))}</div>")
        elif kind == "table":
            parts.append(f"<table><tr><td>{draw(_flow(depth + 1))}</td></tr></table>")
        elif kind == "ul":
            parts.append(f"<ul><li>{draw(_flow(depth + 1))}</li></ul>")
        else:
            parts.append("<style>p {color: red}</style>")
    return "".join(parts)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(body=_flow())
def test_the_tree_and_the_standard_parser_read_well_formed_html_alike(body: str) -> None:
    """libxml2's tree (quick) and html.parser's events (the fallback) give the same text."""
    html = f"<html><head><title>T</title></head><body>{body}</body></html>"
    assert "".join(_tree_parts(html)).split() == "".join(_parser_parts(html)).split()
    lines = [line.strip() for line in "".join(_tree_parts(html)).splitlines()]
    parsed = [line.strip() for line in "".join(_parser_parts(html)).splitlines()]
    assert [line for line in lines if line] == [line for line in parsed if line]


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
    original = check._template  # fetched for each render

    def counting(name: str) -> Any:
        rendered.append(name)
        return original(name)

    monkeypatch.setattr(check, "_template", counting)
    at = datetime(2024, 5, 6, tzinfo=UTC)
    ann = CustomerState(traits={"visits": 2})
    assert check("plain.html", "ann", ann, None, at)
    assert check("plain.html", "ann", ann, None, at + timedelta(days=7))
    assert check("dated.html", "ann", ann, None, at)
    assert check("dated.html", "ann", ann, None, at + timedelta(days=7))
    assert rendered == [
        "plain.html",
        "dated.html",
        "dated.html",
    ]
    assert not check("plain.html", "ann", CustomerState(traits={"visits": 0}), None, at)
    fault = check.problems["plain.html"]
    assert (fault.line, fault.message) == (1, "ZeroDivisionError: division by zero")


def test_a_body_check_reads_a_template_edited_after_it_forgets(tmp_path: Path) -> None:
    """Between a durable pass's batches the check forgets: an edited template is read again
    (within a batch, one fetch serves every send: no look at the file's time each)."""
    body = tmp_path / "hello.html"
    body.write_text("<p>Hi {{ customer.traits.name }}</p>\n")
    check = BodyCheck(tmp_path, keep_rendered=True)
    at = datetime(2024, 5, 6, tzinfo=UTC)
    ann = CustomerState(traits={"name": "Ann"})
    assert check("hello.html", "ann", ann, None, at)
    assert check.take("hello.html", "ann", ann, None, at, check.unsubscribe_url("ann", at)) == (
        "<p>Hi Ann</p>"
    )
    check.forget()
    body.write_text("<p>Hello again, {{ customer.traits.name }}</p>\n")
    os.utime(body, (time.time() + 5, time.time() + 5))  # a later time than the first write's
    assert check("hello.html", "ann", ann, None, at)
    assert check.take("hello.html", "ann", ann, None, at, check.unsubscribe_url("ann", at)) == (
        "<p>Hello again, Ann</p>"
    )
