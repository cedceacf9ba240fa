"""The file providers' factories, registered as the ``outbox`` and ``csv`` providers.

::

    providers:
      email: {provider: outbox, path: outbox/email, sender: shop@example.com}
      ads: {provider: outbox, path: outbox/ads}
      call: {provider: csv, path: outbox/calls}

Paths are relative to the project root (the folder of ``followup.yaml``). A channel the section
leaves out gets its file provider at its default path, so an empty section is the no-credentials
default (see :mod:`engine.providers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from engine.channels import ChannelProvider, ProviderContext
from engine.errors import ConfigError
from engine.providers import build_providers
from integrations.outbox.ads import FileAdsOutbox
from integrations.outbox.calls import CsvCallList
from integrations.outbox.email import FileEmailOutbox
from integrations.settings import (
    ProviderSettings,
    checked_by,
    read_settings,
    reading_check,
    settings_error,
)

DEFAULT_PATHS = {"email": "outbox/email", "ads": "outbox/ads", "call": "outbox/calls"}


class _FolderSettings(ProviderSettings):
    path: str | None = Field(default=None, min_length=1)


class _EmailSettings(_FolderSettings):
    sender: str | None = None

    @field_validator("sender")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is not None and "@" not in value:
            raise ValueError(f"must be an email address, not {value!r}")
        return value


def _folder(settings: _FolderSettings, context: ProviderContext) -> Path:
    return context.root / (settings.path or DEFAULT_PATHS[context.channel])


def _made(channel: str, path: Path, build: Any) -> ChannelProvider:
    try:
        provider: ChannelProvider = build()
    except OSError as error:
        reason = error.strerror or error
        raise ConfigError(f"providers.{channel}.path: cannot use {path}: {reason}") from error
    return provider


def outbox_settings(settings: Mapping[str, Any], context: ProviderContext) -> _FolderSettings:
    """``providers.email`` or ``providers.ads`` for ``provider: outbox``; a
    :class:`SettingsError` otherwise."""
    if context.channel == "email":
        return read_settings(_EmailSettings, settings, context)
    if context.channel == "ads":
        return read_settings(_FolderSettings, settings, context)
    raise settings_error(
        context,
        (),
        "the outbox provider carries email and ads only"
        + ("; use provider: csv for calls" if context.channel == "call" else ""),
    )


@checked_by(reading_check(outbox_settings))  # no folder is made
def outbox_provider(settings: Mapping[str, Any], context: ProviderContext) -> ChannelProvider:
    """``provider: outbox``: email as ``.eml`` files, or ad-audience changes as JSON lines."""
    chosen = outbox_settings(settings, context)
    path, clock = _folder(chosen, context), context.clock
    if isinstance(chosen, _EmailSettings):
        sender = chosen.sender
        return _made(
            "email",
            path,
            lambda: (
                FileEmailOutbox(path, sender, clock=clock)
                if sender
                else FileEmailOutbox(path, clock=clock)
            ),
        )
    return _made("ads", path, lambda: FileAdsOutbox(path, clock=clock))


def csv_settings(settings: Mapping[str, Any], context: ProviderContext) -> _FolderSettings:
    """``providers.call`` for ``provider: csv``; a :class:`SettingsError` otherwise."""
    if context.channel != "call":
        raise settings_error(context, (), "the csv provider carries calls only")
    return read_settings(_FolderSettings, settings, context)


@checked_by(reading_check(csv_settings))  # no folder is made
def csv_provider(settings: Mapping[str, Any], context: ProviderContext) -> ChannelProvider:
    """``provider: csv``: calls as CSV call lists, one file per list."""
    path = _folder(csv_settings(settings, context), context)
    return _made("call", path, lambda: CsvCallList(path, clock=context.clock))


def build_file_providers(
    root: Path, providers: Mapping[str, Mapping[str, Any]]
) -> dict[str, ChannelProvider]:
    """The providers for a ``providers:`` section, by channel (a shorthand for tests and the
    Python API; the same path as ``followup run``)."""
    return build_providers(root, providers, environ={})
