"""Deliveries and providers for the SMTP tests."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme

from engine.channels import Delivery, DeliveryAction, ProviderContext, Recipient
from integrations.smtp import SmtpEmail, smtp_provider
from tests.smtp.server import PASSWORD, USERNAME, RunningServer

DUE = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)
ENV = {"SMTP_USERNAME": USERNAME, "SMTP_PASSWORD": PASSWORD}


def an_email(address: str = "jane@example.net", step: str = "1", **fields: Any) -> Delivery:
    content: dict[str, Any] = {
        "subject": "Jane, you left 2 items behind",
        "text": "Your cart is waiting.\n.\nA line that starts with a dot.",
        "html": "<p>Your cart is <b>waiting</b>.</p>",
        "from": "Shop <shop@example.com>",
        "unsubscribe_url": "https://shop.example.com/unsubscribe/abc.def",
        "tags": ["cart"],
    }
    journey = f"j_{address.split('@')[0]}"
    return Delivery(
        key=f"{journey}:{step}",
        campaign="abandoned-cart",
        journey=journey,
        step=step,
        channel="email",
        action=DeliveryAction.SEND,
        due_at=DUE,
        recipient=Recipient(customer_id="c_1", email=address, first_name="Jane"),
        fields={**content, **fields},
    )


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def build(
    server: RunningServer,
    tmp_path: Path,
    security: str = "starttls",
    environ: dict[str, str] | None = None,
    **settings: Any,
) -> SmtpEmail:
    """The provider as ``followup.yaml`` would build it, trusting the server's test CA."""
    server.ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config: dict[str, Any] = {
        "provider": "smtp",
        "host": server.host,
        "port": server.port,
        "security": security,
        "sender": "bounces@example.com",
        "ca_file": "ca.pem",
        "timeout": 5,
    }
    if security != "none":
        config |= {"username_env": "SMTP_USERNAME", "password_env": "SMTP_PASSWORD"}
    config |= settings
    context = ProviderContext("email", tmp_path, ENV if environ is None else environ)
    provider = smtp_provider({k: v for k, v in config.items() if v is not None}, context)
    assert isinstance(provider, SmtpEmail)
    return provider


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()
