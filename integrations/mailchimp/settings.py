"""``providers.email`` settings of the Mailchimp provider.

::

    providers:
      email:
        provider: mailchimp
        list_id: abc123                          # the audience members are kept in
        sender: Shop <shop@example.com>          # From when a step names none
        api_key_env: MAILCHIMP_API_KEY           # Marketing key (``<key>-us19``)
        transactional_key_env: MAILCHIMP_TRANSACTIONAL_KEY
        journeys: {welcome: {journey_id: 1, step_id: 2}}   # sent by a Customer Journey instead
        store_id: shop-1                         # e-commerce sync (carts, orders)
        newsletters: {weekly-newsletter: {tag: weekly}}   # sent as one regular campaign per issue

Secrets are never settings: ``*_env`` name the environment variables that hold them.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from integrations.settings import ProviderSettings

MARKETING_KEY_ENV = "MAILCHIMP_API_KEY"
TRANSACTIONAL_KEY_ENV = "MAILCHIMP_TRANSACTIONAL_KEY"


class JourneyStep(BaseModel):
    """A Customer Journey step built in Mailchimp with the "Customer Journeys API" condition."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    journey_id: int = Field(gt=0)
    step_id: int = Field(gt=0)


class Newsletter(BaseModel):
    """A campaign sent as one Mailchimp regular campaign per issue, to members tagged
    ``<tag>-<YYYYMMDDHHMM of the issue's due time>``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    tag: str = Field(min_length=1, max_length=87)  # + "-YYYYMMDDHHMM": Mailchimp's 100


class MailchimpSettings(ProviderSettings):
    """What the ``mailchimp`` email provider reads from ``providers.email``."""

    list_id: str = Field(min_length=1)
    sender: str | None = None
    api_key_env: str = Field(default=MARKETING_KEY_ENV, min_length=1)
    transactional_key_env: str = Field(default=TRANSACTIONAL_KEY_ENV, min_length=1)
    journeys: dict[str, JourneyStep] = Field(default_factory=dict)
    store_id: str | None = Field(default=None, min_length=1)
    newsletters: dict[str, Newsletter] = Field(default_factory=dict)
    status_if_new: Literal["subscribed", "pending", "transactional"] = "subscribed"
    marketing_permission_id: str | None = Field(default=None, min_length=1)
    timeout: float = Field(default=30.0, gt=0, le=120)
    host: str | None = None
    transactional_host: str | None = None

    @field_validator("sender")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is not None and "@" not in parseaddr(value)[1]:
            raise ValueError(
                f"must be an email address like Shop <shop@example.com>, not {value!r}"
            )
        return value

    @field_validator("host", "transactional_host")
    @classmethod
    def _a_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must be a base URL like http://127.0.0.1:4010, not {value!r}")
        return value.rstrip("/") if value else value

    def journey_for(self, campaign: str, step: str) -> JourneyStep | None:
        """The journey step mapped to ``campaign:step``, else to ``campaign``, else ``None``."""
        return self.journeys.get(f"{campaign}:{step}") or self.journeys.get(campaign)
