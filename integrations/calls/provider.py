"""The ``calllist`` provider: each call delivery becomes a row of ``call_entries`` in the project
database, for ``followup calls export`` to hand to the dialer inside the customer's calling window.

::

    providers:
      call: {provider: calllist, path: outbox/calls}   # path: where exports go by default

The cells are those of the CSV call list (:func:`integrations.outbox.calls.call_row`: E.164
phone, one-line names defused against spreadsheet formulas, the local window, priority, reason,
cart value). A phone on the do-not-call list (``call_dnc``) is skipped with
``suppressed: do-not-call`` (not sent, not a failure). The entry is unique by delivery key, so a repeated delivery is
recognised (``idempotent``).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from pydantic import Field

from engine.channels import (
    ChannelProvider,
    Delivery,
    DeliveryOutcome,
    DeliveryStatus,
    ProviderCheck,
    ProviderContext,
)
from engine.clock import Clock, utc_now
from engine.storage.database import open_database
from integrations.calls.entries import (
    DNC_DETAIL,
    EntryStatus,
    add_entry,
    dnc_contains,
    entry_id,
    missing_tables,
)
from integrations.outbox._files import as_utc, failed
from integrations.outbox.calls import DEFAULT_WINDOW, call_row, call_target
from integrations.settings import (
    ProviderSettings,
    checked_by,
    read_settings,
    reading_check,
    settings_error,
)

DEFAULT_PATH = "outbox/calls"
ALREADY = "already on the call list"
_CLOCK_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


class CallListSettings(ProviderSettings):
    """``providers.call`` for ``provider: calllist``."""

    path: str = Field(default=DEFAULT_PATH, min_length=1)


def _window_problem(fields: Mapping[str, Any]) -> str | None:
    for name, default in zip(("window_start", "window_end"), DEFAULT_WINDOW, strict=True):
        value = fields.get(name) or default
        if not isinstance(value, str) or not _CLOCK_TIME.fullmatch(value):
            return f"{name} {value!r} is not a local time HH:MM"
    return None


def _zone_problem(timezone: str) -> str | None:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"no time zone: {timezone!r} is not an IANA zone, so calling hours cannot be kept"
    return None


class CallListProvider:
    """Adds call deliveries to the call lists in the database (see the module docstring).

    ``clock`` dates the rows and the retry of a delivery the database refused (after
    ``retry_after``)."""

    name = "calllist"
    idempotent = True  # the entry is unique by delivery key

    def __init__(
        self,
        engine: sa.Engine,
        *,
        clock: Clock = utc_now,
        retry_after: timedelta = timedelta(minutes=5),
    ) -> None:
        self.engine = engine
        self._clock = clock
        self._retry_after = retry_after
        # Nothing closes providers (``followup tick`` just returns): release the connections
        # when this one goes, rather than leave them to the garbage collector.
        self._release = weakref.finalize(self, engine.dispose)

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        """Add the call to its list unless its key is there or its phone is do-not-call."""
        target = call_target(delivery)
        if isinstance(target, DeliveryOutcome):
            return target
        list_name, phone = target
        problem = _window_problem(delivery.fields) or _zone_problem(delivery.recipient.timezone)
        if problem is not None:
            return failed(problem)
        values = self._entry(delivery, str(list_name), phone)
        try:
            with self.engine.begin() as conn:
                if dnc_contains(conn, phone):
                    detail = f"{DNC_DETAIL}: {phone} is on the do-not-call list"
                    return DeliveryOutcome(DeliveryStatus.SKIPPED, detail)
                added = add_entry(conn, values)
        except sa.exc.DBAPIError as error:  # the message may quote customer data: name it only
            reason = type(error.orig).__name__ if error.orig is not None else type(error).__name__
            retry_at = self._clock() + self._retry_after
            return DeliveryOutcome(
                DeliveryStatus.FAILED, f"cannot write the call list: {reason}", retry_at
            )
        detail = f"added to call list {list_name}" if added else ALREADY
        return DeliveryOutcome(DeliveryStatus.DELIVERED, detail, provider_id=values["id"])

    def _entry(self, delivery: Delivery, list_name: str, phone: str) -> dict[str, Any]:
        cells = call_row(delivery, phone)
        now = self._clock()
        return {
            "id": entry_id(delivery.key),
            "key": delivery.key,
            "list_name": list_name,
            "customer_id": delivery.recipient.customer_id,
            "phone": phone,
            "first_name": cells["first_name"],
            "last_name": cells["last_name"],
            "timezone": cells["timezone"],
            "window_start": cells["call_window_start_local"],
            "window_end": cells["call_window_end_local"],
            "priority": cells["priority"],
            "reason": cells["reason"],
            "script": cells["script"],
            "campaign_id": delivery.campaign,
            "journey_id": delivery.journey,
            "cart_value": cells["cart_value"],
            "due_at": as_utc(delivery.due_at),
            "status": EntryStatus.PENDING.value,
            "created_at": now,
            "updated_at": now,
        }

    def check(self) -> ProviderCheck:
        """Whether the database answers and holds the call-list tables."""
        try:
            with self.engine.connect() as conn:
                missing = missing_tables(conn)
        except sa.exc.DBAPIError as error:
            reason = type(error.orig).__name__ if error.orig is not None else type(error).__name__
            return ProviderCheck(False, f"the database does not answer: {reason}")
        if missing:
            return ProviderCheck(False, f"the database lacks the tables {', '.join(missing)}")
        return ProviderCheck(True, "call lists in the project database")

    def close(self) -> None:
        """Release the database connections."""
        self._release()


def export_folder(settings: Mapping[str, Any], context: ProviderContext) -> Path:
    """Where ``followup calls export`` writes when not told (``providers.call.path``)."""
    return context.root / read_settings(CallListSettings, settings, context).path


def calllist_settings(settings: Mapping[str, Any], context: ProviderContext) -> CallListSettings:
    """``providers.call`` as :class:`CallListSettings`; a :class:`SettingsError` otherwise."""
    if context.channel != "call":
        raise settings_error(context, (), "the calllist provider carries calls only")
    read = read_settings(CallListSettings, settings, context)
    if not context.database_url:
        raise settings_error(
            context,
            (),
            "the calllist provider keeps its lists in the project database; "
            "set database_url in followup.yaml",
        )
    return read


@checked_by(reading_check(calllist_settings))  # the database is not opened
def calllist_provider(settings: Mapping[str, Any], context: ProviderContext) -> ChannelProvider:
    """``provider: calllist``: calls as entries of the call lists in the project database."""
    calllist_settings(settings, context)
    assert context.database_url is not None  # calllist_settings checked it
    return CallListProvider(open_database(context.database_url), clock=context.clock)
