"""The ``facebook`` provider's settings and factory (entry point ``followup.providers``)::

    providers:
      ads:
        provider: facebook
        ad_account_id: act_1234567890
        access_token_env: FACEBOOK_ACCESS_TOKEN   # a system-user token with ads_management
        app_secret_env: FACEBOOK_APP_SECRET       # optional: signs calls (appsecret_proof)
        app_id_env: FACEBOOK_APP_ID               # optional
        api_version: v26.0                        # optional; the SDK's default
        customer_file_source: USER_PROVIDED_ONLY  # optional
        timeout_seconds: 60                       # optional

Secrets come from the environment only. The SDK is initialised with ``crash_log=False``: its
default installs a ``sys.excepthook`` that posts crash reports to Meta.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any, Literal

from facebook_business.api import FacebookAdsApi
from pydantic import Field, field_validator

from engine.channels import ChannelProvider, ProviderContext
from engine.errors import SettingProblem
from engine.secrets import Redactor, read_secret
from integrations.facebook.provider import FacebookAudiences
from integrations.settings import (
    ProviderSettings,
    checked_by,
    read_settings,
    reading_check,
    settings_error,
    unset_variables,
    where_of,
)

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class FacebookSettings(ProviderSettings):
    """``providers.ads`` for ``provider: facebook``."""

    ad_account_id: str = Field(default="", validate_default=True)
    access_token_env: str = Field(default="FACEBOOK_ACCESS_TOKEN", pattern=_ENV_NAME)
    app_secret_env: str | None = Field(default=None, pattern=_ENV_NAME)
    app_id_env: str | None = Field(default=None, pattern=_ENV_NAME)
    api_version: str = Field(default=FacebookAdsApi.API_VERSION, pattern=r"^v[0-9]+\.[0-9]+$")
    customer_file_source: Literal[
        "USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED"
    ] = "USER_PROVIDED_ONLY"
    timeout_seconds: float = Field(default=60.0, gt=0, le=600)

    @field_validator("ad_account_id", mode="before")
    @classmethod
    def _an_ad_account(cls, value: object) -> str:
        if value is None or value == "":
            raise ValueError("required; write the ad account as act_<digits> (act_1234567890)")
        if not isinstance(value, str) or not re.fullmatch(r"act_[0-9]+", value):
            raise ValueError(
                f"write the ad account as act_<digits> (act_1234567890), not {value!r}"
            )
        return value


def facebook_settings(settings: Mapping[str, Any], context: ProviderContext) -> FacebookSettings:
    """``providers.ads`` as :class:`FacebookSettings`; a :class:`SettingsError` otherwise."""
    if context.channel != "ads":
        raise settings_error(context, (), "the facebook provider carries ads only")
    return read_settings(FacebookSettings, settings, context)


def _unset_facebook_variables(
    chosen: FacebookSettings, context: ProviderContext
) -> list[SettingProblem]:
    """Warnings for the Meta variables not set here (nothing calls Meta)."""
    return unset_variables(
        context,
        [
            ("access_token_env", chosen.access_token_env, "a Meta access token"),
            ("app_secret_env", chosen.app_secret_env, "the Meta app secret"),
            ("app_id_env", chosen.app_id_env, "the Meta app id"),
        ],
    )


@checked_by(reading_check(facebook_settings, _unset_facebook_variables))
def facebook_provider(settings: Mapping[str, Any], context: ProviderContext) -> ChannelProvider:
    """``provider: facebook``: the ads channel as Meta custom audiences."""
    where = where_of(context)
    chosen = facebook_settings(settings, context)
    token = read_secret(
        context.environ,
        chosen.access_token_env,
        "a Meta access token with ads_management",
        f"{where}.access_token_env",
    )
    secret = (
        read_secret(
            context.environ,
            chosen.app_secret_env,
            "the Meta app secret",
            f"{where}.app_secret_env",
        )
        if chosen.app_secret_env
        else None
    )
    app_id = (
        read_secret(context.environ, chosen.app_id_env, "the Meta app id", f"{where}.app_id_env")
        if chosen.app_id_env
        else None
    )
    api = FacebookAdsApi.init(
        app_id=app_id,
        app_secret=secret,
        access_token=token,
        api_version=chosen.api_version,
        timeout=chosen.timeout_seconds,
        crash_log=False,
    )
    return FacebookAudiences(
        api,
        chosen.ad_account_id,
        customer_file_source=chosen.customer_file_source,
        redact=Redactor(secret_values(token, secret)),
        clock=context.clock,
    )


def secret_values(token: str, secret: str | None) -> list[str]:
    """Every secret value a text might carry: the token, the app secret, and the
    ``appsecret_proof`` the SDK derives from them (it goes in every URL)."""
    if secret is None:
        return [token]
    proof = hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()
    return [token, secret, proof]
