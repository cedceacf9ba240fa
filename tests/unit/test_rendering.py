"""The text part of an email, from its HTML."""

from __future__ import annotations

from pathlib import Path

from engine.rendering import html_to_text, render_email


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
