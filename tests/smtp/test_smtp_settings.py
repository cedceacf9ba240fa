"""The smtp provider's settings: built by name through the entry point, secrets only from the
environment, and every bad setting named with what to write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.errors import ConfigError
from engine.providers import build_providers
from integrations.smtp import SmtpEmail

ENV = {"SMTP_USERNAME": "shop@example.com", "SMTP_PASSWORD": "pa55-w0rd-value"}
BASE = {
    "provider": "smtp",
    "host": "smtp.example.com",
    "sender": "Shop <shop@example.com>",
    "username_env": "SMTP_USERNAME",
    "password_env": "SMTP_PASSWORD",
}


def _email(tmp_path: Path, environ: dict[str, str] | None = None, **settings: Any) -> Any:
    section = {"email": {**BASE, **settings}}
    return build_providers(tmp_path, section, environ=ENV if environ is None else environ)["email"]


def test_built_by_name_with_the_default_port_of_each_security(tmp_path: Path) -> None:
    for security, port in (("starttls", 587), ("ssl", 465)):
        provider = _email(tmp_path, security=security)
        assert isinstance(provider, SmtpEmail)
        assert (provider.server.port, provider.server.security) == (port, security)
        assert provider.server.username == "shop@example.com"
        assert "pa55-w0rd-value" not in repr(provider.server)
        assert not provider.idempotent
    relay = _email(tmp_path, security="none", username_env=None, password_env=None, port=2525)
    assert (relay.server.port, relay.server.username) == (2525, None)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"security": "none"}, "providers.email.security: none would send the password"),
        ({"security": "tls"}, "providers.email.security"),
        ({"password_env": None}, "providers.email.password_env: set both"),
        ({"sender": "shop"}, "providers.email.sender: Value error, must be an email address"),
        ({"port": 0}, "providers.email.port"),
        ({"hostname": "x"}, "unknown setting 'hostname'; did you mean 'host'?"),
        ({"ca_file": "nowhere.pem"}, "providers.email.ca_file: cannot read"),
    ],
)
def test_bad_settings_name_the_setting(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    config = {key: value for key, value in {**BASE, **settings}.items() if value is not None}
    with pytest.raises(ConfigError) as raised:
        build_providers(tmp_path, {"email": config}, environ=ENV)
    assert message in str(raised.value)


def test_a_missing_secret_names_the_variable_never_a_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        _email(tmp_path, {"SMTP_USERNAME": "shop@example.com"})
    assert str(raised.value) == (
        "providers.email.password_env: set the environment variable SMTP_PASSWORD "
        "(the SMTP password)"
    )


def test_smtp_carries_email_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"providers\.call: the smtp provider carries email only"):
        build_providers(tmp_path, {"call": BASE}, environ=ENV)
