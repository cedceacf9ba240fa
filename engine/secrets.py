"""Secrets come from the environment only: never from ``followup.yaml``, never into a log or an
error. A setting names the variable (``api_key_env: MAILCHIMP_API_KEY``); :func:`read_secret`
reads it or says which variable to set; :class:`Redactor` scrubs known secret values out of any
text (a vendor's error message, an exception) before it is recorded or printed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from engine.errors import ConfigError

REDACTED = "[redacted]"


def read_secret(environ: Mapping[str, str], variable: str, what: str, where: str) -> str:
    """The value of ``variable``; a :class:`ConfigError` naming the variable (never a value)
    when it is unset or empty. ``what`` says what it is, ``where`` which setting needs it."""
    value = environ.get(variable, "")
    if not value.strip():
        raise ConfigError(f"{where}: set the environment variable {variable} ({what})")
    return value.strip()


class Redactor:
    """Replaces every known secret value (and its obvious encodings) with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: object) -> str:
        shown = str(text)
        for secret in self._secrets:
            shown = shown.replace(secret, REDACTED)
        return shown
