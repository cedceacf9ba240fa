"""Call lists in the project database: the ``calllist`` provider and the dialer round trip.

- :class:`CallListProvider` — each call delivery becomes a ``call_entries`` row (do-not-call
  phones refused with ``suppressed: do-not-call``).
- :func:`export_list` — the dialer's CSV of the entries it may call today, marked ``exported``.
- :func:`record_outcome` — a call's outcome on its entry, logged as a ``Call Completed`` event.
- :mod:`integrations.calls.entries` — the do-not-call list and the counts by list and status.

Importing the package imports none of them: each name comes from its module on first use, so
``followup calls --help`` does not load the database layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.lazy_exports import lazy_attribute

if TYPE_CHECKING:
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

_MODULES = {
    "CallListProvider": "integrations.calls.provider",
    "CallOutcome": "integrations.calls.outcomes",
    "EntryStatus": "integrations.calls.entries",
    "ExportSummary": "integrations.calls.export",
    "OutcomeRejected": "integrations.calls.outcomes",
    "OutcomeReport": "integrations.calls.outcomes",
    "calllist_provider": "integrations.calls.provider",
    "entry_id": "integrations.calls.entries",
    "export_list": "integrations.calls.export",
    "read_outcomes": "integrations.calls.outcomes",
    "record_outcome": "integrations.calls.outcomes",
}


def __getattr__(name: str) -> Any:
    """``name`` from the module that defines it, imported now."""
    return lazy_attribute(__name__, _MODULES, name)


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
