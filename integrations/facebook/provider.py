"""Audience changes carried to Meta custom audiences through the ``facebook-business`` SDK.

Each ``audience_add`` / ``audience_remove`` delivery names its audience in ``fields["audience"]``.
A batch is grouped by audience and action; each group is one upload: ``POST`` (add) or
``DELETE`` (remove) ``/<audience id>/users`` with the multi-key schema of
:data:`integrations.facebook.keys.SCHEMA` and rows hashed by :mod:`integrations.facebook.keys`,
at most 10,000 rows a request, every request carrying the upload's ``session``
(``session_id``, ``batch_seq``, ``last_batch_flag``, ``estimated_num_total``).

Removals go in the URL's query string (the SDK sends ``DELETE`` parameters there), and Graph
fails long URLs (``facebook/facebook-python-business-sdk#367``, ``#279``;
``facebook/facebook-java-business-sdk#179``: removals of 1,000-2,000 hashed emails already
broke), so a removal request also stops at about 32,000 characters of encoded payload.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.customaudience import CustomAudience
from facebook_business.api import FacebookAdsApi

from engine.channels import (
    Delivery,
    DeliveryAction,
    DeliveryOutcome,
    DeliveryStatus,
    ProviderCheck,
)
from engine.clock import Clock, utc_now
from engine.secrets import Redactor
from integrations.facebook.audiences import AudienceDirectory
from integrations.facebook.failures import (
    CALL_ERRORS,
    Backoff,
    UnreadableReply,
    failure_of,
)
from integrations.facebook.keys import SCHEMA
from integrations.facebook.uploads import Upload, plan_uploads

MAX_ROWS = 10_000
"""Meta's limit of records per ``users`` request."""
MAX_REMOVE_CHARS = 32_000
"""Percent-encoded payload characters per removal request (its rows go in the URL)."""

_NO_SECRETS = Redactor(())
_VERBS = {DeliveryAction.AUDIENCE_ADD: "added to", DeliveryAction.AUDIENCE_REMOVE: "removed from"}


class FacebookAudiences:
    """The ``facebook`` ads provider: adds and removes customers in Meta custom audiences.

    Idempotent: a custom audience is a set of matched people, keyed by the hashed identifiers
    Meta matches (Marketing API, "Custom Audiences from CRM data": "Facebook compares this with
    our hashed data to see if we should add someone ... to your ad's audience",
    https://developers.facebook.com/docs/marketing-api/audiences-api/; the ``users`` edge,
    https://developers.facebook.com/docs/marketing-api/reference/custom-audience/users). Adding
    someone already in it, or removing someone not in it, leaves it as it was, so repeating a
    request after a timeout or a crash changes nothing: a timeout is retried, never ``unknown``.

    ``api`` is an initialised SDK api (see :mod:`integrations.facebook.registry`); ``redact``
    scrubs the access token and app secret out of every detail; ``clock`` dates retries;
    ``session_ids`` numbers uploads (random 62-bit integers by default).
    """

    name = "facebook"
    idempotent = True

    def __init__(
        self,
        api: FacebookAdsApi,
        ad_account_id: str,
        *,
        customer_file_source: str = CustomAudience.CustomerFileSource.user_provided_only,
        redact: Callable[[object], str] = _NO_SECRETS,
        clock: Clock = utc_now,
        session_ids: Callable[[], int] = lambda: secrets.randbits(62),
        max_rows: int = MAX_ROWS,
        max_remove_chars: int = MAX_REMOVE_CHARS,
    ) -> None:
        self._api = api
        self._account_id = ad_account_id
        self._audiences = AudienceDirectory(api, ad_account_id, customer_file_source)
        self._redact = redact
        self._clock = clock
        self._session_ids = session_ids
        self._max_rows = max_rows
        self._max_remove_chars = max_remove_chars
        self._backoff = Backoff()
        self._halt: DeliveryOutcome | None = None  # the last failure worth a retry, until then

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        """Carry one audience change: a batch of one."""
        return self.deliver_batch([delivery])[0]

    def deliver_batch(self, deliveries: Sequence[Delivery]) -> list[DeliveryOutcome]:
        """Carry every audience change, one upload per audience and action; an outcome for
        each delivery, in order. Once a call fails in a way worth retrying (throttled, a timeout,
        Meta unavailable), nothing more is sent until its ``retry_at``, in this batch or the
        next: the rest fail with the same ``retry_at``, so Meta is not pressed while it refuses
        and a customer's changes are retried in their order. A permanent error fails only the
        deliveries of its request."""
        outcomes: list[DeliveryOutcome | None] = [None] * len(deliveries)
        refused, uploads = plan_uploads(deliveries)
        for index, reason in refused.items():
            outcomes[index] = DeliveryOutcome(DeliveryStatus.FAILED, reason)
        halted = self._halt_in_force()
        for upload in uploads:
            if halted is None:
                halted = self._upload(upload, outcomes)
            for index in upload.indexes:
                if outcomes[index] is None and halted is not None:
                    outcomes[index] = DeliveryOutcome(
                        DeliveryStatus.FAILED, f"not sent after: {halted.detail}", halted.retry_at
                    )
        done = [outcome for outcome in outcomes if outcome is not None]
        assert len(done) == len(deliveries)  # every delivery has its outcome
        return done

    def check(self) -> ProviderCheck:
        """Read the ad account's name and status: the token works and Meta answers."""
        try:
            account = AdAccount(self._account_id, api=self._api).api_get(
                fields=[AdAccount.Field.name, AdAccount.Field.account_status]
            )
        except CALL_ERRORS as error:
            return ProviderCheck(False, failure_of(error, self._redact).detail)
        except (TypeError, ValueError, KeyError) as error:  # the SDK tripped over the reply
            return ProviderCheck(False, f"Meta answered without a Graph response ({error!r})")
        status = account.get(AdAccount.Field.account_status)
        state = "active" if status == 1 else f"account_status {status}, not active"
        name = self._redact(account.get(AdAccount.Field.name, ""))
        return ProviderCheck(status == 1, f"ad account {self._account_id} {name!r}: {state}")

    def _halt_in_force(self) -> DeliveryOutcome | None:
        """The failure that still holds every call back, if its ``retry_at`` is to come."""
        halt = self._halt
        if halt is None or halt.retry_at is None or halt.retry_at <= self._clock():
            self._halt = None
            return None
        return halt

    def _upload(
        self, upload: Upload, outcomes: list[DeliveryOutcome | None]
    ) -> DeliveryOutcome | None:
        """Send one upload in requests of at most ``max_rows`` rows; record each request's
        outcome. Returns the failure that halts the batch (one worth retrying), if any."""
        try:
            audience_id = self._audiences.audience_id(upload.audience)
        except CALL_ERRORS as error:
            outcome = self._failed(error, f"audience {upload.audience!r}: ")
            for index in upload.indexes:
                outcomes[index] = outcome
            return outcome if outcome.retry_at is not None else None
        chunks = list(self._chunks(upload))
        session_id = self._session_ids()
        audience = CustomAudience(audience_id, api=self._api)
        send = (
            audience.add_users
            if upload.action is DeliveryAction.AUDIENCE_ADD
            else audience.remove_users
        )
        for seq, (start, end) in enumerate(chunks, start=1):
            session = {
                "session_id": session_id,
                "batch_seq": seq,
                "last_batch_flag": seq == len(chunks),
                "estimated_num_total": len(upload.rows),
            }
            rows = upload.rows[start:end]
            try:
                reply = send(list(SCHEMA), rows, is_raw=True, pre_hashed=True, session=session)
                _check_reply(reply)
            except CALL_ERRORS as error:
                outcome = self._failed(error, f"audience {upload.audience!r}: ")
                for index in upload.indexes[start:end]:
                    outcomes[index] = outcome
                if outcome.retry_at is not None:
                    return outcome
                continue
            self._backoff.succeeded()
            done = DeliveryOutcome(
                DeliveryStatus.DELIVERED,
                f"{_VERBS[upload.action]} Meta audience {upload.audience!r} "
                f"(session {session_id}, request {seq} of {len(chunks)})",
                provider_id=audience_id,
            )
            for index in upload.indexes[start:end]:
                outcomes[index] = done
        return None

    def _chunks(self, upload: Upload) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of each request's rows: at most ``max_rows``, and for a removal at
        most ``max_remove_chars`` of encoded payload (at least one row)."""
        start = 0
        while start < len(upload.rows):
            end = min(start + self._max_rows, len(upload.rows))
            if upload.action is DeliveryAction.AUDIENCE_REMOVE:
                used, stop = 0, start
                while stop < end:
                    used += _encoded_length(upload.rows[stop])
                    if used > self._max_remove_chars and stop > start:
                        break
                    stop += 1
                end = stop
            yield start, end
            start = end

    def _failed(self, error: Exception, prefix: str) -> DeliveryOutcome:
        failure = failure_of(error, self._redact)
        retry_at: datetime | None = None
        if failure.retry:
            retry_at = self._backoff.retry_at(failure, self._clock())
        outcome = DeliveryOutcome(DeliveryStatus.FAILED, prefix + failure.detail, retry_at)
        if retry_at is not None:
            self._halt = outcome
        return outcome


def _check_reply(reply: Any) -> None:
    """Raise :class:`UnreadableReply` unless ``reply`` (a ``FacebookResponse``) is an HTTP
    success with a JSON object: the SDK lets an HTML 502 page pass as success."""
    status = reply.status()
    if not (isinstance(status, int) and 200 <= status < 300) or not isinstance(reply.json(), dict):
        raise UnreadableReply(f"HTTP {status}")


def _encoded_length(row: list[str]) -> int:
    """Characters a row takes in the percent-encoded payload, with its comma."""
    return len(quote(json.dumps(row, separators=(",", ":")), safe="")) + 3
