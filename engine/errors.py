"""The errors followup raises, one shallow tree.

::

    FollowupError
    ├── ConfigError          followup.yaml or a command-line argument is wrong
    ├── InputError           an input file cannot be read at all (missing, not a file, bad mapping)
    └── StorageError         the database cannot be reached or brought up to date

A single bad event is not an error: ingest records it as a :class:`engine.events.Rejection` and goes
on with the rest.
"""

from __future__ import annotations


class FollowupError(Exception):
    """Root of every error followup raises on purpose; the CLI prints these without a traceback."""


class ConfigError(FollowupError):
    """The project configuration or an argument is invalid; the message says where and what to do."""


class InputError(FollowupError):
    """An input file as a whole cannot be used (it does not exist, or its column mapping is wrong)."""


class StorageError(FollowupError):
    """The database is unreachable or its schema cannot be brought up to date."""
