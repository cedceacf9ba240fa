"""A message written directly is the very bytes the standard ``email`` package writes for it.

Hypothesis draws deliveries whose headers and bodies mix the plain case with everything that
needs quoting, encoding or folding (specials, non-ASCII, line breaks, long values); whenever
:func:`_plain_bytes` writes a message, the package must write the same bytes (and accept it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.channels import Delivery, DeliveryAction, Recipient
from integrations.outbox.email import (
    WIRE_POLICY,
    MessageInvalid,
    _plain_bytes,
    build_message,
    message_bytes,
)

SENDER = "Shop <shop@example.com>"
_PLAIN = "abcxyzABZ019"
_TRICKY = " .,;:\"<>()[]@=?\\'-_+/~!\té\u2028\r\n"
_plain = st.lists(st.text(st.sampled_from(_PLAIN), min_size=1, max_size=8), max_size=4).map(
    " ".join
)
_tricky = st.text(st.sampled_from(list(_PLAIN) + list(_TRICKY)), max_size=40) | st.sampled_from(
    ["=?utf-8?q?x?=", "x" * 90, " lead", "a  b"]
)
_any_text = _plain | _tricky
_plain_address = st.builds(
    lambda local, domain: f"{local.replace(' ', '.') or 'a'}@{domain}",
    _plain,
    st.sampled_from(["example.com", "localhost", "shop-1.example.co"]),
)
_any_address = st.one_of(
    _plain_address,
    st.sampled_from(
        ["a.b+c@shop.example.co", "Bob Lee <bob@example.com>", "x@y", "x@localhost", "bad", ""]
    ),
    _tricky.map(lambda local: f"{local}@example.com"),
)
_body = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.sampled_from(["<p>Hi</p>" * 30, "line\n" * 30, "é\n" * 12, "x" * 200 + "\n", "a\rb\r\n"]),
)


@st.composite
def _delivery(draw: st.DrawFn) -> Delivery:
    """Half the deliveries plain in every header (written directly, so compared), half with
    anything anywhere."""
    plain = draw(st.booleans())
    text = _plain if plain else _any_text
    address = _plain_address if plain else _any_address
    fields: dict[str, Any] = {"subject": draw(text), "text": draw(_body), "html": draw(_body)}
    if plain and not (fields["text"] or fields["html"]):
        fields["text"] = "Hi"
    for name, value in (
        ("from", address),
        ("reply_to", address),
        ("unsubscribe_url", st.sampled_from(["", "https://s.example/u/t", "http://s/u?a=?b"])),
        ("tags", st.one_of(st.lists(text, max_size=3), text)),
    ):
        if draw(st.booleans()):
            fields[name] = draw(value)
    long = not plain and draw(st.booleans())
    journey = draw(st.sampled_from(["j" * 70, "j-1"] if long else ["j_0123abcd", "j-1"]))
    return Delivery(
        key=f"{journey}:{draw(st.sampled_from(['1', '2.then.0']))}",
        campaign="c" * 80 if long else "abandoned-cart",
        journey=journey,
        step="1",
        channel="email",
        action=DeliveryAction.SEND,
        due_at=datetime(2024, 6, 1, 12, 30, tzinfo=UTC)
        + timedelta(seconds=draw(st.integers(0, 10**8))),
        recipient=Recipient(
            customer_id="c_1",
            email=draw(address),
            first_name=draw(st.none() | text),
            last_name=draw(st.none() | text),
        ),
        fields=fields,
    )


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(delivery=_delivery())
def test_written_directly_is_what_the_email_package_writes(delivery: Delivery) -> None:
    plain = _plain_bytes(delivery, SENDER)
    if plain is None:
        return
    expected = build_message(delivery, SENDER).as_bytes(policy=WIRE_POLICY)
    assert plain.split(b"\r\n") == expected.split(b"\r\n")


def test_a_usual_message_is_written_directly() -> None:
    """The common case takes the direct path (else the speed-up is moot)."""
    delivery = Delivery(
        key="j_0123abcd:1",
        campaign="abandoned-cart",
        journey="j_0123abcd",
        step="1",
        channel="email",
        action=DeliveryAction.SEND,
        due_at=datetime(2024, 6, 1, 12, 30, tzinfo=UTC),
        recipient=Recipient(customer_id="c_1", email="ann@example.com", first_name="Ann"),
        fields={
            "subject": "Ann, you left 2 items behind",
            "text": "Your cart is waiting.\n" + "Long line " * 20,
            "html": "<p>Your cart is <b>waiting</b>.</p>" * 10,
            "unsubscribe_url": "https://shop.example.com/unsubscribe/" + "t" * 120,
            "tags": ["cart", "recovery"],
        },
    )
    plain = _plain_bytes(delivery, SENDER)
    assert plain is not None
    assert plain == message_bytes(delivery, SENDER)
    try:
        build_message(delivery, SENDER)
    except MessageInvalid as error:  # pragma: no cover - the delivery above is valid
        raise AssertionError(error) from error


_ENCODED_WORDS = st.sampled_from(
    [
        "=?utf-8?q?Eve=0D=0AReply-To:_attacker@evil.test=0D=0A=0D=0A<h1>pwned</h1>?=",
        "=?utf-8?q?Hi=0D=0ABcc:_evil@example.com?=",
        "=?utf-8?b?SGkNCkJjYzogZXZpbEBleGFtcGxlLmNvbQ==?=",
        "=?iso-8859-1?q?fake?= encoded",
    ]
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(name=_ENCODED_WORDS | _any_text, subject=_ENCODED_WORDS | _any_text, words=_ENCODED_WORDS)
def test_customer_text_never_makes_headers_of_its_own(name: str, subject: str, words: str) -> None:
    """A first name or a subject rendered from a trait holding RFC 2047 encoded words (an
    attacker's ``=?utf-8?q?Eve=0D=0ABcc:...?=``) stays the one header's text: a strict reader
    finds the headers followup wrote and no other, and the subject as it was rendered (the
    standard package decoded the words when the header was set and wrote their CR LF)."""
    from email import policy
    from email.parser import BytesParser

    delivery = Delivery(
        key="j_0123abcd:1",
        campaign="welcome",
        journey="j_0123abcd",
        step="1",
        channel="email",
        action=DeliveryAction.SEND,
        due_at=datetime(2024, 6, 1, 12, 30, tzinfo=UTC),
        recipient=Recipient(customer_id="c_1", email="eve@example.com", first_name=words + name),
        fields={"subject": subject + " " + words, "text": "Hi", "html": "<p>Hi</p>"},
    )
    try:
        wire = message_bytes(delivery, SENDER)
    except MessageInvalid:
        return  # a raw CR LF or another character no header may hold: refused, not sent
    read = BytesParser(policy=policy.default).parsebytes(wire)
    assert sorted(set(read.keys())) == sorted(
        {"To", "From", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}
        | {"X-Followup-Key", "X-Followup-Campaign", "X-Followup-Journey", "X-Followup-Step"}
    )
    assert read["To"].addresses[0].addr_spec == "eve@example.com"
    shown = str(read["Subject"]).replace("\u2060", "")
    assert "\r" not in shown and "\n" not in shown
    assert words in shown
