"""Call lists in the project database: the ``calllist`` provider and the dialer round trip.

- :class:`CallListProvider` — each call delivery becomes a ``call_entries`` row (do-not-call
  phones refused with ``suppressed: do-not-call``).
- :func:`export_list` — the dialer's CSV of the entries it may call today, marked ``exported``.
- :func:`record_outcome` — a call's outcome on its entry, logged as a ``Call Completed`` event.
- :mod:`integrations.calls.entries` — the do-not-call list and the counts by list and status.
"""

from __future__ import annotations

from integrations.calls.entries import EntryStatus, entry_id
from integrations.calls.export import ExportSummary, export_list
from integrations.calls.outcomes import (
    CallOutcome,
    OutcomeRejected,
    OutcomeReport,
    read_outcomes,
    record_outcome,
)
from integrations.calls.provider import CallListProvider, calllist_provider

__all__ = [
    "CallListProvider",
    "CallOutcome",
    "EntryStatus",
    "ExportSummary",
    "OutcomeRejected",
    "OutcomeReport",
    "calllist_provider",
    "entry_id",
    "export_list",
    "read_outcomes",
    "record_outcome",
]
