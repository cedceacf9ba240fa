"""The ad account's customer-file custom audiences, one per campaign audience name.

An audience is made when first needed. Before making one, the account's audiences are listed
(``GET /act_<id>/customaudiences?fields=name``, every page) and one of the same name is used, so
a restarted process does not make a second. Ids are kept in memory for the life of the provider.
Two processes that both need a new audience at the same moment may still make two (Meta does not
enforce unique names); the next lookup then uses the first one listed.
"""

from __future__ import annotations

import threading

from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.customaudience import CustomAudience
from facebook_business.api import FacebookAdsApi

from integrations.facebook.failures import UnreadableReply

PAGE_SIZE = 500


class AudienceDirectory:
    """Custom audience ids by name in one ad account. SDK errors pass through to the caller; a
    reply the SDK cannot read raises :class:`UnreadableReply`.

    ``customer_file_source`` says where the customer data came from, as Meta asks on creation
    (``USER_PROVIDED_ONLY``: collected from the customers themselves)."""

    def __init__(self, api: FacebookAdsApi, ad_account_id: str, customer_file_source: str):
        self._account = AdAccount(ad_account_id, api=api)
        self._source = customer_file_source
        self._ids: dict[str, str] = {}
        self._listed = False
        self._lock = threading.Lock()

    def audience_id(self, name: str) -> str:
        """The id of the audience called ``name``: cached, else found by listing the account's
        audiences (once per provider), else created."""
        with self._lock:
            if name in self._ids:
                return self._ids[name]
            try:
                if not self._listed:
                    self._list()
                if name not in self._ids:
                    self._ids[name] = self._create(name)
            except (TypeError, ValueError, KeyError, AttributeError) as error:
                # the SDK parses whatever came back; an HTML page makes it trip like this
                raise UnreadableReply(f"{type(error).__name__} reading the reply") from error
            return self._ids[name]

    def _list(self) -> None:
        found: dict[str, str] = {}
        cursor = self._account.get_custom_audiences(
            fields=[CustomAudience.Field.name], params={"limit": PAGE_SIZE}
        )
        for audience in cursor:
            name = audience.get(CustomAudience.Field.name)
            if isinstance(name, str):
                found.setdefault(name, str(audience.get_id()))
        for name, audience_id in found.items():
            self._ids.setdefault(name, audience_id)
        self._listed = True

    def _create(self, name: str) -> str:
        created = self._account.create_custom_audience(
            params={
                CustomAudience.Field.name: name,
                CustomAudience.Field.subtype: CustomAudience.Subtype.custom,
                CustomAudience.Field.description: f"followup audience {name!r}",
                CustomAudience.Field.customer_file_source: self._source,
            }
        )
        audience_id = created.get_id()
        if not audience_id:
            raise UnreadableReply("no id for the new audience")
        return str(audience_id)
