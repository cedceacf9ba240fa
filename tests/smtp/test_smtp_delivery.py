"""The smtp provider against a real SMTP server (aiosmtpd on loopback): STARTTLS and implicit
TLS with a certificate made in the test, AUTH only over TLS, the exact message received."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest
import trustme

from engine.channels import DeliveryStatus
from integrations.outbox.email import build_message, message_id
from tests.smtp.conftest import an_email, build, parsed
from tests.smtp.server import PASSWORD, USERNAME, smtp_server


@pytest.mark.parametrize(
    ("security", "exclude", "mechanism"),
    [
        ("starttls", (), "PLAIN"),
        ("starttls", ("PLAIN",), "LOGIN"),
        ("ssl", (), "PLAIN"),
    ],
)
def test_message_arrives_whole_over_tls_after_login(
    tmp_path: Path,
    ca: trustme.CA,
    security: str,
    exclude: tuple[str, ...],
    mechanism: str,
) -> None:
    delivery = an_email("jane@example.net", reply_to="help@example.com")
    with smtp_server(security, exclude=exclude, ca=ca) as server:
        provider = build(server, tmp_path, security)
        try:
            outcome = provider.deliver(delivery)
        finally:
            provider.close()

    assert outcome.status is DeliveryStatus.DELIVERED, outcome.detail
    assert outcome.detail.startswith(f"accepted by 127.0.0.1:{server.port}: 250")
    assert server.handler.logins == [(mechanism, USERNAME)]
    [received] = server.handler.messages
    assert received.tls and received.login == USERNAME
    assert received.mail_from == "bounces@example.com"
    assert received.rcpt_tos == ["jane@example.net"]
    message = parsed(received.data)
    assert message["From"] == "Shop <shop@example.com>"
    assert message["To"] == "Jane <jane@example.net>"
    assert message["Reply-To"] == "help@example.com"
    assert message["Subject"] == "Jane, you left 2 items behind"
    assert message["Message-ID"] == message_id(delivery.key, "shop@example.com")
    assert outcome.provider_id == message["Message-ID"]
    assert message["List-Unsubscribe"] == "<https://shop.example.com/unsubscribe/abc.def>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Followup-Key"] == delivery.key
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    # the dot-only line came through dot-stuffing unharmed
    shown = text.get_content().replace("\r\n", "\n")
    assert shown == "Your cart is waiting.\n.\nA line that starts with a dot.\n"
    assert html.get_content().strip() == "<p>Your cart is <b>waiting</b>.</p>"


def test_a_relay_without_tls_or_login(tmp_path: Path, ca: trustme.CA) -> None:
    with smtp_server("none", auth=False, ca=ca) as server:
        provider = build(server, tmp_path, "none", ca_file=None)
        try:
            outcome = provider.deliver(an_email(text="Grüße, ünïcode", html=None))
        finally:
            provider.close()
    assert outcome.status is DeliveryStatus.DELIVERED, outcome.detail
    [received] = server.handler.messages
    assert not received.tls and received.login is None
    message = parsed(received.data)
    assert message.get_content_type() == "text/plain"
    assert message.get_content().replace("\r\n", "\n") == "Grüße, ünïcode\n"


def test_one_connection_carries_many_deliveries(tmp_path: Path, ca: trustme.CA) -> None:
    addresses = [f"user{n}@example.net" for n in range(5)]
    with smtp_server("starttls", ca=ca) as server:
        provider = build(server, tmp_path)
        try:
            outcomes = [provider.deliver(an_email(address)) for address in addresses]
        finally:
            provider.close()
    assert [o.status for o in outcomes] == [DeliveryStatus.DELIVERED] * 5
    assert [m.rcpt_tos for m in server.handler.messages] == [[a] for a in addresses]
    assert len({m.peer for m in server.handler.messages}) == 1  # one connection
    assert len(server.handler.logins) == 1  # one login


@pytest.mark.parametrize("shutdown", ["drop", "421 4.4.2 idle too long, closing"])
def test_a_connection_the_server_closed_is_opened_again(
    tmp_path: Path, ca: trustme.CA, shutdown: str
) -> None:
    with smtp_server("starttls", ca=ca) as server:
        provider = build(server, tmp_path)
        try:
            first = provider.deliver(an_email("a@example.net"))
            server.handler.faults.mail.append(shutdown)  # the kept connection is closed at MAIL
            second = provider.deliver(an_email("b@example.net"))
        finally:
            provider.close()
    assert (first.status, second.status) == (DeliveryStatus.DELIVERED, DeliveryStatus.DELIVERED)
    messages = server.handler.messages
    assert [m.rcpt_tos for m in messages] == [["a@example.net"], ["b@example.net"]]
    assert messages[0].peer != messages[1].peer  # a new connection for the second
    assert len(server.handler.logins) == 2


def test_check_logs_in_and_sends_nothing(tmp_path: Path, ca: trustme.CA) -> None:
    with smtp_server("starttls", ca=ca) as server:
        result = build(server, tmp_path).check()
    assert result.ok, result.detail
    assert result.detail == f"127.0.0.1:{server.port} answered (STARTTLS, logged in)"
    assert server.handler.logins == [("PLAIN", USERNAME)]
    assert server.handler.commands == []  # no MAIL, no RCPT, no DATA
    assert server.handler.messages == []


def test_check_with_a_wrong_password_fails_without_the_password(
    tmp_path: Path, ca: trustme.CA
) -> None:
    wrong = "Wr0ng-secret-value"
    environ = {"SMTP_USERNAME": USERNAME, "SMTP_PASSWORD": wrong}
    with smtp_server("starttls", ca=ca) as server:
        provider = build(server, tmp_path, environ=environ)
        result = provider.check()
        outcome = provider.deliver(an_email())
        provider.close()
    assert not result.ok
    assert "535" in result.detail and "password_env" in result.detail
    for shown in (result.detail, outcome.detail):
        assert wrong not in shown and PASSWORD not in shown
    # a wrong password is a configuration error: failed for good, not retried 8 times
    assert (outcome.status, outcome.retry_at) == (DeliveryStatus.FAILED, None)
    assert outcome.detail.startswith(f"login to 127.0.0.1:{server.port} refused: 535")
    assert server.handler.messages == [] and server.handler.commands == []


def test_an_untrusted_certificate_or_no_starttls_fails_for_good(
    tmp_path: Path, ca: trustme.CA
) -> None:
    with smtp_server("starttls", ca=ca) as server:
        other = trustme.CA()  # the client trusts a different CA than the one that signed
        (tmp_path / "other").mkdir()
        other.cert_pem.write_to_path(str(tmp_path / "other" / "ca.pem"))
        provider = build(server, tmp_path, ca_file="other/ca.pem")
        untrusted, checked = provider.deliver(an_email()), provider.check()
        provider.close()
    assert (untrusted.status, untrusted.retry_at) == (DeliveryStatus.FAILED, None)
    assert "not trusted" in untrusted.detail and "ca_file" in untrusted.detail
    assert not checked.ok and "not trusted" in checked.detail

    with smtp_server("none", auth=False, ca=ca) as plain:
        provider = build(plain, tmp_path, "starttls", username_env=None, password_env=None)
        refused, checked = provider.deliver(an_email()), provider.check()
        provider.close()
    assert (refused.status, refused.retry_at) == (DeliveryStatus.FAILED, None)
    assert "STARTTLS extension not supported" in refused.detail
    assert not checked.ok
    assert plain.handler.messages == []


def test_one_click_unsubscribe_only_for_an_https_link() -> None:
    secure = build_message(an_email(), "bounces@example.com")
    assert secure["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain = build_message(
        an_email(unsubscribe_url="http://localhost:8000/unsubscribe/abc"), "bounces@example.com"
    )
    assert plain["List-Unsubscribe"] == "<http://localhost:8000/unsubscribe/abc>"
    assert plain["List-Unsubscribe-Post"] is None  # RFC 8058 asks for an HTTPS link


@pytest.mark.parametrize(
    ("code", "permanent"),
    [(454, False), (421, False), (432, False), (535, True), (534, True), (538, True)],
)
def test_a_4xx_to_the_login_is_retried_and_a_5xx_is_not(code: int, permanent: bool) -> None:
    """docs/channels.md: "4xx at any step (greylisting, mailbox busy, 421, 454 temporary login
    failure): failed, retry in 5 minutes"; "login refused with 535 (or 534, 538): failed for
    good". A 421 at AUTH (the server closing for now) failed for good."""
    from integrations.smtp.replies import describe_connect_error

    refused = smtplib.SMTPAuthenticationError(code, b"4.7.0 try again later")
    found, detail = describe_connect_error(refused, "smtp.example.com:587")
    assert found is permanent
    assert detail.startswith(f"login to smtp.example.com:587 refused: {code}")


def test_implicit_tls_to_a_plain_text_port_fails_for_good(tmp_path: Path, ca: trustme.CA) -> None:
    """docs/channels.md: a TLS setup error 'fails for good, says to check security'. With
    `security: ssl` on a server that answers in plain SMTP, OpenSSL reads its greeting as a
    wrong version number: retrying 8 times could not fix the configuration."""
    with smtp_server("none", auth=False, ca=ca) as plain:
        provider = build(plain, tmp_path, "ssl", username_env=None, password_env=None)
        outcome = provider.deliver(an_email())
        provider.close()
    assert (outcome.status, outcome.retry_at) == (DeliveryStatus.FAILED, None)
    assert "WRONG_VERSION_NUMBER" in outcome.detail and "security" in outcome.detail
