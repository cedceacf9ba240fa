"""The errors followup raises, one shallow tree.

::

    FollowupError
    ├── ConfigError          followup.yaml or a command-line argument is wrong
    │   └── SettingsError    one provider's settings (``providers.<channel>``) are wrong
    ├── InputError           an input file cannot be read at all (missing, not a file, bad mapping)
    └── StorageError         the database cannot be reached or brought up to date

A single bad event is not an error: ingest records it as a :class:`engine.events.Rejection` and goes
on with the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class FollowupError(Exception):
    """Root of every error followup raises on purpose; the CLI prints these without a traceback."""


class ConfigError(FollowupError):
    """The project configuration or an argument is invalid; the message says where and what to do."""


@dataclass(frozen=True, slots=True)
class SettingProblem:
    """One problem with a provider's settings: ``loc`` is the setting's path under
    ``providers.<channel>`` (empty for the entry as a whole), ``at_key`` points at the key
    (an unknown setting) rather than its value. A ``warning`` leaves the settings usable where
    ``followup validate`` runs (an environment variable that is set only where followup runs)."""

    loc: tuple[str | int, ...]
    message: str
    at_key: bool = False
    warning: bool = False

    def shown(self, where: str) -> str:
        """``providers.email.port: message``, the setting named in full under ``where``."""
        named = self.loc[:-1] if self.at_key else self.loc  # a key is named by its mapping
        return "".join([where, *(f".{part}" for part in named), f": {self.message}"])


class SettingsError(ConfigError):
    """A provider's settings are invalid; ``problems`` name each setting, so ``followup
    validate`` can point into ``followup.yaml``. ``where`` is ``providers.<channel>``."""

    def __init__(self, where: str, problems: Sequence[SettingProblem]) -> None:
        super().__init__("; ".join(problem.shown(where) for problem in problems))
        self.where = where
        self.problems = tuple(problems)


class InputError(FollowupError):
    """An input file as a whole cannot be used (it does not exist, or its column mapping is wrong)."""


class StorageError(FollowupError):
    """The database is unreachable or its schema cannot be brought up to date."""
