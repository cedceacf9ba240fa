"""Building the provider from ``providers.email``: the entry point, settings errors that name the
setting, secrets read from the environment only and never shown."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.channels import (
    ActivityListener,
    BatchProvider,
    ChannelProvider,
    ConsentListener,
    ProviderContext,
)
from engine.errors import ConfigError
from engine.providers import build_providers, provider_factory
from integrations.mailchimp import MailchimpEmail, subscriber_hash
from integrations.mailchimp.transport import problem_text, retry_after
from tests.conftest import FIXED_NOW
from tests.mailchimp.conftest import ENVIRON, MARKETING_KEY, SETTINGS


def build(
    settings: dict[str, Any], environ: dict[str, str] = ENVIRON, channel: str = "email"
) -> ChannelProvider:
    factory = provider_factory("mailchimp")
    assert factory is not None
    return factory(settings, ProviderContext(channel, Path("."), environ))


def test_the_entry_point_builds_the_email_provider(tmp_path: Path) -> None:
    built = build_providers(tmp_path, {"email": SETTINGS}, environ=ENVIRON)
    provider = built["email"]
    assert isinstance(provider, MailchimpEmail) and isinstance(provider, ConsentListener)
    assert provider.idempotent is False and provider.settings.list_id == "abc123"
    assert provider.settings.journey_for("win-back", "3") is not None
    assert isinstance(provider, ActivityListener) and provider.synced_events
    assert not isinstance(provider, BatchProvider)  # sends one by one without newsletters


def test_newsletters_make_it_a_batch_provider_and_no_store_no_activity(tmp_path: Path) -> None:
    settings = {**SETTINGS, "newsletters": {"weekly-newsletter": {"tag": "weekly"}}}
    provider = build_providers(tmp_path, {"email": settings}, environ=ENVIRON)["email"]
    assert isinstance(provider, BatchProvider)
    plain = build({**SETTINGS, "store_id": None})
    assert isinstance(plain, MailchimpEmail) and plain.synced_events == frozenset()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"list_idd": "x"}, "providers.email: unknown setting 'list_idd'; did you mean 'list_id'?"),
        ({"list_id": ""}, "providers.email.list_id"),
        ({"sender": "shop"}, "providers.email.sender: Value error, must be an email address"),
        ({"sender": None}, "providers.email.sender: set the From address"),
        ({"journeys": {"x": {"journey_id": 1}}}, "providers.email.journeys.x.step_id"),
        ({"status_if_new": "cleaned"}, "providers.email.status_if_new"),
        ({"host": "localhost:4010"}, "providers.email.host: Value error, must be a base URL"),
        ({"timeout": 500}, "providers.email.timeout"),
        ({"newsletters": {"weekly": {}}}, "providers.email.newsletters.weekly.tag"),
        ({"newsletters": {"weekly": {"tag": "w" * 90}}}, "providers.email.newsletters.weekly.tag"),
    ],
)
def test_bad_settings_name_the_setting(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        build({**SETTINGS, **settings})
    assert message in str(error.value)


def test_keys_come_from_the_named_environment_variables_only() -> None:
    with pytest.raises(ConfigError, match="set the environment variable MAILCHIMP_API_KEY"):
        build(SETTINGS, {})
    with pytest.raises(ConfigError, match="set the environment variable MC_TX"):
        build({**SETTINGS, "transactional_key_env": "MC_TX"}, {"MAILCHIMP_API_KEY": "k-us1"})
    with pytest.raises(ConfigError, match="must be a Marketing key ending in its data center"):
        build(SETTINGS, {**ENVIRON, "MAILCHIMP_API_KEY": "nodatacenter"})
    with pytest.raises(ConfigError, match="the mailchimp provider carries email only"):
        build(SETTINGS, channel="ads")


def test_a_key_never_shows_in_an_error_detail() -> None:
    provider = build(SETTINGS)
    assert isinstance(provider, MailchimpEmail)
    text = provider.transport.redact(f"401 API Key Invalid: your key {MARKETING_KEY} is wrong")
    assert MARKETING_KEY not in text and "[redacted]" in text


def test_vendor_facts() -> None:
    assert subscriber_hash("Jane.Doe@example.com") == "0cba00ca3da1b283a57287bcceb17e35"
    assert retry_after("12", FIXED_NOW) == timedelta(seconds=12)
    assert retry_after("Sat, 01 Jun 2024 12:01:00 GMT", FIXED_NOW) == timedelta(minutes=1)
    assert retry_after("86400", FIXED_NOW) == timedelta(hours=1)  # capped
    assert retry_after("soon", FIXED_NOW) is None
    problem = (
        '{"type":"t","title":"Resource Not Found","status":404,"detail":"No list","instance":"i"}'
    )
    assert problem_text(404, problem) == "404 Resource Not Found: No list"
    assert problem_text(502, "<html>Bad   gateway</html>", "Bad Gateway") == (
        "502 Bad Gateway: <html>Bad gateway</html>"
    )
