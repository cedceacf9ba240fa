"""The ``http`` provider's factory: its settings under ``providers.webhook`` in ``followup.yaml``.

::

    providers:
      webhook:
        provider: http
        urls:                           # a step's `url:` is one of these names
          crm: https://crm.example.com/hooks/followup
        secret_env: FOLLOWUP_WEBHOOK_SECRET   # the HMAC key's environment variable
        timeout: 10                     # seconds to connect, and to wait for the answer
        headers: {X-Source: followup}   # static, non-secret
        receiver_dedupes: false         # true: the receiver dedupes by Idempotency-Key
        ca_file: certs/private-ca.pem   # a private CA, relative to the project

``webhook: {provider: http}`` alone (the default) is valid: every webhook delivery then fails for
good, saying which name to add under ``urls``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

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
from integrations.webhook.poster import HttpWebhook, WebhookTarget
from integrations.webhook.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        TIMESTAMP_HEADER,
        SIGNATURE_HEADER,
        "Idempotency-Key",
        "Content-Type",
        "Content-Length",
        "Host",
        "User-Agent",
        "Transfer-Encoding",
        "Connection",
    )
)
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpSettings(ProviderSettings):
    """``providers.webhook`` for ``provider: http``."""

    urls: dict[str, str] = Field(default_factory=dict)
    secret_env: str | None = Field(default=None, min_length=1)
    timeout: float = Field(default=10.0, gt=0, le=600)
    headers: dict[str, str] = Field(default_factory=dict)
    receiver_dedupes: bool = False
    ca_file: str | None = Field(default=None, min_length=1)

    @field_validator("urls")
    @classmethod
    def _https(cls, urls: dict[str, str]) -> dict[str, str]:
        for name, url in urls.items():
            if not name.strip():
                raise ValueError("a url needs a name")
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - raises on a port that is not a number
            except ValueError as error:
                raise ValueError(f"{name}: {url!r} is not a URL ({error})") from None
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ValueError(f"{name}: write an https:// URL, not {url!r}")
            if parts.scheme == "http" and not _loopback(parts.hostname):
                raise ValueError(f"{name}: {url!r} is not encrypted; write https://")
            if parts.username is not None or parts.password is not None:
                raise ValueError(
                    f"{name}: no credentials in the URL; receivers check the signature instead"
                )
        return urls

    @field_validator("headers")
    @classmethod
    def _static(cls, headers: dict[str, str]) -> dict[str, str]:
        for header, value in headers.items():
            if not _TOKEN.match(header):
                raise ValueError(f"{header!r} is not a header name")
            if header.lower() in RESERVED_HEADERS:
                raise ValueError(f"{header} is set by followup itself; leave it out")
            if header.lower() in SECRET_HEADERS:
                raise ValueError(
                    f"{header} would put a secret in followup.yaml; receivers check "
                    f"{SIGNATURE_HEADER} (keyed by secret_env) instead"
                )
            if "\r" in value or "\n" in value:
                raise ValueError(f"{header}: a header value must be one line")
        return headers


def http_settings(settings: Mapping[str, Any], context: ProviderContext) -> HttpSettings:
    """``providers.webhook`` as :class:`HttpSettings`; a :class:`SettingsError` otherwise."""
    if context.channel != "webhook":
        raise settings_error(context, (), "the http provider carries webhooks only")
    hooks = read_settings(HttpSettings, settings, context)
    if hooks.urls and hooks.secret_env is None:
        raise settings_error(
            context,
            ("secret_env",),
            "name the environment variable that holds the key the requests are signed with, "
            "e.g. secret_env: FOLLOWUP_WEBHOOK_SECRET",
        )
    return hooks


def _http_tls_and_key(hooks: HttpSettings, context: ProviderContext) -> list[SettingProblem]:
    """The CA file's problems, and a warning for an unset signing key (nothing is posted)."""
    signing = hooks.secret_env if hooks.urls else None
    return problems_of(lambda: tls_context(hooks.ca_file, context, where_of(context))) + (
        unset_variables(context, [("secret_env", signing, "the webhook signing key")])
    )


@checked_by(reading_check(http_settings, _http_tls_and_key))
def http_provider(settings: Mapping[str, Any], context: ProviderContext) -> ChannelProvider:
    """``provider: http``: webhooks as signed POSTs (see :mod:`integrations.webhook.poster`)."""
    where = where_of(context)
    hooks = http_settings(settings, context)
    secret = ""
    if hooks.urls and hooks.secret_env is not None:
        secret = read_secret(
            context.environ, hooks.secret_env, "the webhook signing key", f"{where}.secret_env"
        )
    target = WebhookTarget(
        urls=dict(hooks.urls),
        secret=secret,
        timeout=hooks.timeout,
        headers=dict(hooks.headers),
        receiver_dedupes=hooks.receiver_dedupes,
        tls=tls_context(hooks.ca_file, context, where),
    )
    return HttpWebhook(target, clock=context.clock, where=where)
