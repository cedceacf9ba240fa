"""The ``mailchimp`` provider's factory (entry point ``followup.providers:mailchimp``).

::

    providers:
      email: {provider: mailchimp, list_id: abc123, sender: Shop <shop@example.com>}

with ``MAILCHIMP_API_KEY`` (``<key>-<dc>``) and ``MAILCHIMP_TRANSACTIONAL_KEY`` in the
environment (other names through ``api_key_env`` and ``transactional_key_env``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.channels import ChannelProvider, ProviderContext
from engine.clock import Clock, utc_now
from engine.errors import ConfigError, SettingProblem
from engine.secrets import read_secret
from integrations.mailchimp.commerce import MailchimpCommerce
from integrations.mailchimp.email import MailchimpEmail, MailchimpNewsletters
from integrations.mailchimp.settings import MailchimpSettings
from integrations.mailchimp.transport import Transport
from integrations.settings import (
    checked_by,
    read_settings,
    reading_check,
    settings_error,
    unset_variables,
)


def mailchimp_settings(settings: Mapping[str, Any], context: ProviderContext) -> MailchimpSettings:
    """``providers.email`` as :class:`MailchimpSettings`; a :class:`SettingsError` otherwise."""
    if context.channel != "email":
        raise settings_error(context, (), "the mailchimp provider carries email only")
    read = read_settings(MailchimpSettings, settings, context)
    if read.sender is None:
        raise settings_error(
            context, ("sender",), "set the From address, e.g. Shop <shop@example.com>"
        )
    return read


def _unset_mailchimp_keys(
    read: MailchimpSettings, context: ProviderContext
) -> list[SettingProblem]:
    """Warnings for the Mailchimp keys not set here (nothing calls Mailchimp)."""
    return unset_variables(
        context,
        [
            ("api_key_env", read.api_key_env, "the Mailchimp Marketing API key"),
            (
                "transactional_key_env",
                read.transactional_key_env,
                "the Mailchimp Transactional key",
            ),
        ],
    )


def mailchimp_transport(
    settings: MailchimpSettings, context: ProviderContext, wall_clock: Clock = utc_now
) -> Transport:
    """The SDK clients with the keys read from the environment, dating retries on the passes'
    clock (``context.clock``); ``wall_clock`` is what Mailchimp's own times compare with."""
    where = f"providers.{context.channel}"
    marketing = read_secret(
        context.environ, settings.api_key_env, "the Mailchimp Marketing API key", where
    )
    if "-" not in marketing and settings.host is None:
        raise ConfigError(
            f"{where}: {settings.api_key_env} must be a Marketing key ending in its data center,"
            " like <key>-us19"
        )
    transactional = read_secret(
        context.environ, settings.transactional_key_env, "the Mailchimp Transactional key", where
    )
    return Transport(
        marketing,
        transactional,
        timeout=settings.timeout,
        host=settings.host,
        transactional_host=settings.transactional_host,
        clock=context.clock,
        wall_clock=wall_clock,
    )


def newsletter_campaigns(settings: Mapping[str, Any]) -> list[str]:
    """The campaigns ``newsletters:`` sends as one regular campaign per issue: one content for
    every member, so their templates must not personalise."""
    newsletters = settings.get("newsletters")
    return [str(campaign) for campaign in newsletters] if isinstance(newsletters, Mapping) else []


@checked_by(
    reading_check(mailchimp_settings, _unset_mailchimp_keys),
    list_campaigns=newsletter_campaigns,
)
def mailchimp_provider(
    settings: Mapping[str, Any], context: ProviderContext, wall_clock: Clock = utc_now
) -> ChannelProvider:
    """``provider: mailchimp`` for the email channel; retries are dated on ``context.clock``,
    Mailchimp's own times compared with ``wall_clock`` (a test's stand-in shares its clock)."""
    read = mailchimp_settings(settings, context)
    kind = MailchimpNewsletters if read.newsletters else MailchimpEmail
    return kind(read, mailchimp_transport(read, context, wall_clock))


def mailchimp_commerce(provider: MailchimpEmail) -> MailchimpCommerce:
    """Cart and order sync for the provider's ``store_id``."""
    if provider.settings.store_id is None:
        raise ConfigError("providers.email.store_id: set the Mailchimp store id to sync carts")
    return MailchimpCommerce(provider.transport, provider.settings.store_id)
