"""The ``smtp`` provider's factory: its settings under ``providers.email`` in ``followup.yaml``.

::

    providers:
      email:
        provider: smtp
        host: smtp.example.com
        port: 587                    # default: 587 starttls, 465 ssl, 25 none
        security: starttls           # starttls | ssl | none
        username_env: SMTP_USERNAME  # the names of environment variables, never the values
        password_env: SMTP_PASSWORD
        sender: shop@example.com     # envelope sender, and From when a step names none
        timeout: 30                  # seconds for each network step
        ca_file: certs/relay-ca.pem  # a private CA, relative to the project; default: the system's
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parseaddr
from typing import Any

from pydantic import Field, field_validator

from engine.channels import ChannelProvider, ProviderContext
from engine.errors import SettingProblem
from engine.secrets import read_secret
from integrations.settings import (
    ProviderSettings,
    checked_by,
    problems_of,
    read_settings,
    reading_check,
    settings_error,
    tls_context,
    unset_variables,
    where_of,
)
from integrations.smtp.sender import Security, SmtpEmail, SmtpServer

DEFAULT_PORTS: Mapping[str, int] = {"starttls": 587, "ssl": 465, "none": 25}


class SmtpSettings(ProviderSettings):
    """``providers.email`` for ``provider: smtp``."""

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = "starttls"
    username_env: str | None = Field(default=None, min_length=1)
    password_env: str | None = Field(default=None, min_length=1)
    sender: str
    timeout: float = Field(default=30.0, gt=0, le=600)
    ca_file: str | None = Field(default=None, min_length=1)

    @field_validator("sender")
    @classmethod
    def _an_address(cls, value: str) -> str:
        address = parseaddr(value)[1]
        if "@" not in address or not address.isascii():
            raise ValueError(f"must be an email address like shop@example.com, not {value!r}")
        return value


def smtp_settings(settings: Mapping[str, Any], context: ProviderContext) -> SmtpSettings:
    """``providers.email`` as :class:`SmtpSettings`; a :class:`SettingsError` otherwise."""
    if context.channel != "email":
        raise settings_error(context, (), "the smtp provider carries email only")
    smtp = read_settings(SmtpSettings, settings, context)
    if (smtp.username_env is None) != (smtp.password_env is None):
        missing = "password_env" if smtp.password_env is None else "username_env"
        raise settings_error(
            context,
            (missing,),
            "set both username_env and password_env, or neither (a relay that needs no login)",
        )
    if smtp.username_env is not None and smtp.security == "none":
        raise settings_error(
            context,
            ("security",),
            "none would send the password unencrypted; "
            "write security: starttls (port 587) or ssl (port 465)",
        )
    return smtp


def _smtp_tls_and_login(smtp: SmtpSettings, context: ProviderContext) -> list[SettingProblem]:
    """The CA file's problems, and warnings for unset login variables (nothing connects)."""
    return problems_of(lambda: tls_context(smtp.ca_file, context, where_of(context))) + (
        unset_variables(
            context,
            [
                ("username_env", smtp.username_env, "the SMTP user name"),
                ("password_env", smtp.password_env, "the SMTP password"),
            ],
        )
    )


@checked_by(reading_check(smtp_settings, _smtp_tls_and_login))
def smtp_provider(settings: Mapping[str, Any], context: ProviderContext) -> ChannelProvider:
    """``provider: smtp``: email through an SMTP relay (see :mod:`integrations.smtp.sender`)."""
    where = where_of(context)
    smtp = smtp_settings(settings, context)
    username = password = None
    if smtp.username_env is not None and smtp.password_env is not None:
        username = read_secret(
            context.environ, smtp.username_env, "the SMTP user name", f"{where}.username_env"
        )
        password = read_secret(
            context.environ, smtp.password_env, "the SMTP password", f"{where}.password_env"
        )
    server = SmtpServer(
        host=smtp.host,
        port=smtp.port or DEFAULT_PORTS[smtp.security],
        security=smtp.security,
        timeout=smtp.timeout,
        username=username,
        password=password,
        tls=tls_context(smtp.ca_file, context, where),
    )
    return SmtpEmail(server, smtp.sender, clock=context.clock, where=where)
