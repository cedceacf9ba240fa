"""The call channel as CSV call lists a dialer imports, one file per list.

``<path>/<list>.csv`` (UTF-8, comma-separated, ``\\n`` line ends, header row first) gets one row
per call to place, in the columns of :data:`COLUMNS`: the export row proposed in INTEGRATIONS.md
section 4, trimmed to what a delivery carries. The calling window is the customer's local time
(``HH:MM``, default 08:00-21:00) so the dialer can keep calling hours in the customer's zone;
``not_before_utc`` is when the call became due. Each key is appended at most once per list file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.channels import Delivery, DeliveryAction, DeliveryOutcome, DeliveryStatus
from engine.contact import normalize_phone
from integrations.outbox._files import (
    ALREADY,
    KeyedFileOutbox,
    as_utc,
    failed,
    io_failed,
)

COLUMNS = (
    "key",
    "contact_id",
    "phone_e164",
    "first_name",
    "last_name",
    "timezone",
    "call_window_start_local",
    "call_window_end_local",
    "not_before_utc",
    "priority",
    "reason",
    "campaign",
    "cart_value",
    "script",  # the step's script, rendered for the customer
)
DEFAULT_WINDOW = ("08:00", "21:00")  # 47 CFR 64.1200(c)(1), recipient-local; the dialer may narrow
DEFAULT_PRIORITY = "normal"

_FORMULA_START = ("=", "+", "-", "@", "\t")


def _csv_line(values: Mapping[str, str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([values[column] for column in COLUMNS])
    return buffer.getvalue()


HEADER = _csv_line({column: column for column in COLUMNS})


def _one_line(value: object) -> str:
    """A cell on one physical line: a call list is read line by line by many dialers."""
    return " ".join(str(value).split()) if value is not None else ""


def _customer_text(value: object) -> str:
    """Text the customer typed (names), defused so a spreadsheet never runs it as a formula."""
    text = _one_line(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _money(value: Any) -> str:
    if value is None or value == "" or isinstance(value, bool):
        return ""
    try:
        return f"{Decimal(str(value)):.2f}"
    except InvalidOperation:
        return _one_line(value)


def call_target(delivery: Delivery) -> tuple[str, str] | DeliveryOutcome:
    """The list and E.164 phone of a call delivery, or the permanent failure that it has none."""
    if delivery.action is not DeliveryAction.SEND:
        return failed(f"the call list cannot {delivery.action.value}")
    list_name = delivery.fields.get("list")
    if not list_name:
        return failed("no call list")
    if not delivery.recipient.phone:
        return failed("no phone")
    phone = normalize_phone(delivery.recipient.phone)
    if phone is None:
        return failed("no phone: the number on file is not a possible phone number")
    return str(list_name), phone


def call_row(delivery: Delivery, phone_e164: str) -> dict[str, str]:
    """The CSV cells for a call delivery, by column."""
    fields = delivery.fields
    recipient = delivery.recipient
    return {
        "key": delivery.key,
        "contact_id": recipient.customer_id,
        "phone_e164": phone_e164,
        "first_name": _customer_text(recipient.first_name),
        "last_name": _customer_text(recipient.last_name),
        "timezone": recipient.timezone,
        "call_window_start_local": _one_line(fields.get("window_start") or DEFAULT_WINDOW[0]),
        "call_window_end_local": _one_line(fields.get("window_end") or DEFAULT_WINDOW[1]),
        "not_before_utc": as_utc(delivery.due_at).isoformat(),
        "priority": _one_line(fields.get("priority") or DEFAULT_PRIORITY),
        "reason": _one_line(fields.get("reason") or delivery.campaign),
        "campaign": delivery.campaign,
        "cart_value": _money(fields.get("cart_value")),
        # rendered from the customer's traits: defused as their name is
        "script": _customer_text(fields.get("script") or None),
    }


def _key_of(line: str) -> str | None:
    return next(csv.reader([line]))[0] or None


class CsvCallList(KeyedFileOutbox):
    """Appends call deliveries to ``<path>/<list>.csv``, each key once; a customer without a
    possible phone number fails for good ("no phone").

    ``clock`` and ``retry_after`` date the retry of a delivery the file system refused.
    """

    name = "csv"
    idempotent = True  # a repeated key is found and not carried again

    suffix = ".csv"
    header = HEADER
    key_of = staticmethod(_key_of)

    def deliver(self, delivery: Delivery) -> DeliveryOutcome:
        """Append the call to its list unless its key is already there."""
        target = call_target(delivery)
        if isinstance(target, DeliveryOutcome):
            return target
        list_name, phone = target
        calls = self._file(list_name)
        try:
            appended = calls.append_once(delivery.key, _csv_line(call_row(delivery, phone)))
        except OSError as error:
            return io_failed(error, self._clock, self._retry_after)
        except ValueError as error:  # a key with a line break cannot be one CSV line
            return failed(str(error))
        detail = "appended to the call list" if appended else ALREADY
        return DeliveryOutcome(DeliveryStatus.DELIVERED, detail, provider_id=calls.path.name)
