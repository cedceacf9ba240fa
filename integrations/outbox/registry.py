"""Building the file providers from the ``providers:`` section of ``followup.yaml``.

::

    providers:
      email: {provider: outbox, path: outbox/email, sender: shop@example.com}
      ads: {provider: outbox, path: outbox/ads}
      call: {provider: csv, path: outbox/calls}

Paths are relative to the project root (the folder of ``followup.yaml``). A channel among email,
ads and call that the section leaves out gets its file provider at its default path, so an empty
section is the no-credentials default. Everything else is a :class:`ConfigError` that names the
problem: providers that are planned but not built yet (mailchimp, smtp, facebook, http), unknown
providers, channels and settings (with a suggestion when the name looks like a typo).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.channels import ChannelProvider
from engine.errors import ConfigError
from integrations.outbox.ads import FileAdsOutbox
from integrations.outbox.calls import CsvCallList
from integrations.outbox.email import FileEmailOutbox

DEFAULT_PROVIDERS: Mapping[str, Mapping[str, str]] = {
    "email": {"provider": "outbox", "path": "outbox/email"},
    "ads": {"provider": "outbox", "path": "outbox/ads"},
    "call": {"provider": "csv", "path": "outbox/calls"},
}
LATER_PROVIDERS: Mapping[str, tuple[str, ...]] = {
    "email": ("mailchimp", "smtp"),
    "ads": ("facebook",),
    "call": (),
    "webhook": ("http",),
}
_SETTINGS: Mapping[str, frozenset[str]] = {
    "email": frozenset({"provider", "path", "sender"}),
    "ads": frozenset({"provider", "path"}),
    "call": frozenset({"provider", "path"}),
}


def _email(path: Path, settings: Mapping[str, Any]) -> ChannelProvider:
    if "sender" in settings:
        return FileEmailOutbox(path, settings["sender"])
    return FileEmailOutbox(path)


def _ads(path: Path, settings: Mapping[str, Any]) -> ChannelProvider:
    return FileAdsOutbox(path)


def _calls(path: Path, settings: Mapping[str, Any]) -> ChannelProvider:
    return CsvCallList(path)


_BUILDERS: Mapping[str, Callable[[Path, Mapping[str, Any]], ChannelProvider]] = {
    "email": _email,
    "ads": _ads,
    "call": _calls,
}


def build_file_providers(
    root: Path, providers: Mapping[str, Mapping[str, Any]]
) -> dict[str, ChannelProvider]:
    """The channel providers for ``providers`` (the ``providers:`` section), by channel name,
    with folders under ``root`` (created as needed). Raises :class:`ConfigError` for anything it
    cannot build, before any folder is made."""
    if not isinstance(providers, Mapping):
        raise ConfigError("providers must be a mapping of channel to {provider: ..., path: ...}")
    for channel in providers:
        if channel not in LATER_PROVIDERS:
            hint = _hint(str(channel), LATER_PROVIDERS)
            raise ConfigError(f"unknown channel {channel!r} in providers{hint}")
    for channel in providers.keys() - DEFAULT_PROVIDERS.keys():
        _check(channel, providers[channel], {})  # raises: only the file providers exist yet
    planned = {
        channel: _check(channel, providers.get(channel, default), default)
        for channel, default in DEFAULT_PROVIDERS.items()
    }
    built: dict[str, ChannelProvider] = {}
    for channel, settings in planned.items():
        path = root / settings["path"]
        try:
            built[channel] = _BUILDERS[channel](path, settings)
        except OSError as error:
            reason = error.strerror or error
            raise ConfigError(f"providers.{channel}.path: cannot use {path}: {reason}") from error
    return built


def _check(channel: str, settings: object, default: Mapping[str, str]) -> Mapping[str, Any]:
    """``settings`` checked and completed with the default path."""
    where = f"providers.{channel}"
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{where} must be a mapping like {{provider: ..., path: ...}}")
    provider = settings.get("provider")
    if not isinstance(provider, str) or not provider:
        raise ConfigError(f"{where} needs a provider")
    if provider in LATER_PROVIDERS.get(channel, ()):
        raise ConfigError(f"{where}: not available yet: {channel} provider {provider!r}")
    if not default or provider != default["provider"]:
        known = ([default["provider"]] if default else []) + list(LATER_PROVIDERS[channel])
        hint = _hint(provider, known)
        raise ConfigError(f"{where}: unknown {channel} provider {provider!r}{hint}")
    for setting in settings:
        if setting not in _SETTINGS[channel]:
            hint = _hint(str(setting), _SETTINGS[channel])
            raise ConfigError(f"{where}: unknown setting {setting!r}{hint}")
    path = settings.get("path", default["path"])
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}.path must be a folder path, not {path!r}")
    sender = settings.get("sender")
    if "sender" in settings and not (isinstance(sender, str) and "@" in sender):
        raise ConfigError(f"{where}.sender must be an email address, not {sender!r}")
    return {**settings, "path": path}


def _hint(name: str, choices: Iterable[str]) -> str:
    names = sorted(choices)
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; choose one of: {', '.join(names)}" if names else ""
