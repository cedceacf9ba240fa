"""The channel providers of a project, found through the ``followup.providers`` entry points.

Each entry point is named after a provider (``outbox``, ``csv``, ``smtp``, ``mailchimp``,
``facebook``, ``http``, ...) and loads a :data:`engine.channels.ProviderFactory`. The
``providers:`` section of ``followup.yaml`` picks one per channel; a channel it leaves out gets
its default (the file outbox), so an empty section is the no-credentials embedded default. A
third-party package adds a provider by registering its own entry point. The core never imports
an integration: it only calls what the entry points name.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from engine.channels import (
    ChannelProvider,
    ListContentFactory,
    ProviderContext,
    ProviderFactory,
    SettingsCheckingFactory,
)
from engine.clock import Clock, utc_now
from engine.errors import ConfigError, SettingProblem
from engine.plugin_groups import PROVIDERS
from engine.rates import Rate, parse_rate

GROUP = PROVIDERS
RATE = "rate"
CHANNELS = ("email", "ads", "call", "webhook")
DEFAULTS: Mapping[str, Mapping[str, str]] = {
    "email": {"provider": "outbox", "path": "outbox/email"},
    "ads": {"provider": "outbox", "path": "outbox/ads"},
    "call": {"provider": "csv", "path": "outbox/calls"},
    "webhook": {"provider": "http"},
}


@cache
def _provider_points() -> dict[str, EntryPoint]:
    """Every installed provider's entry point by name (the first, if two share a name), found
    once per process: a search reads the metadata of every installed package."""
    points: dict[str, EntryPoint] = {}
    for point in entry_points(group=GROUP):
        points.setdefault(point.name, point)
    return points


def provider_names() -> tuple[str, ...]:
    """The names of every installed provider."""
    return tuple(sorted(_provider_points()))


def provider_factory(name: str) -> ProviderFactory | None:
    """The factory registered as ``name``, or ``None``."""
    point = _provider_points().get(name)
    if point is None:
        return None
    factory: ProviderFactory = point.load()
    return factory


def channel_settings(section: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Each channel's settings: the configured ones, else the default where its provider is
    installed. Raises :class:`ConfigError` for an unknown channel or a malformed entry."""
    if not isinstance(section, Mapping):
        raise ConfigError("providers must be a mapping of channel to {provider: ..., ...}")
    for channel in section:
        if channel not in CHANNELS:
            raise ConfigError(f"unknown channel {channel!r} in providers{hint(channel, CHANNELS)}")
    chosen: dict[str, Mapping[str, Any]] = {}
    for channel in CHANNELS:
        settings = section.get(channel)
        if settings is None:
            default = DEFAULTS[channel]
            if default["provider"] in provider_names():
                chosen[channel] = default
            continue
        where = f"providers.{channel}"
        if not isinstance(settings, Mapping):
            raise ConfigError(f"{where} must be a mapping like {{provider: ..., ...}}")
        name = settings.get("provider")
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"{where} needs a provider; choose one of: {', '.join(provider_names())}"
            )
        if name not in provider_names():
            raise ConfigError(
                f"{where}: unknown {channel} provider {name!r}{hint(name, provider_names())}"
            )
        # ``rate`` is the core's (a throttle shared by every process): not the provider's own
        chosen[channel] = {key: value for key, value in settings.items() if key != RATE}
    return chosen


def provider_rates(section: Mapping[str, Any]) -> dict[str, Rate]:
    """The rate each configured provider is held to (``rate: 20/s``), by channel; raises
    :class:`ConfigError` for a rate that is not one."""
    rates: dict[str, Rate] = {}
    if not isinstance(section, Mapping):
        return rates
    for channel, settings in section.items():
        if isinstance(settings, Mapping) and settings.get(RATE) is not None:
            try:
                rates[str(channel)] = parse_rate(settings[RATE])
            except ValueError as exc:
                raise ConfigError(f"providers.{channel}.rate: {exc}") from None
    return rates


def build_providers(
    root: Path,
    section: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    database_url: str | None = None,
    unsubscribe_base: str | None = None,
    clock: Clock = utc_now,
) -> dict[str, ChannelProvider]:
    """The provider of every channel, by channel name. Secrets come from ``environ`` (default:
    the process environment) and nowhere else; ``clock`` is the passes' clock (see
    :class:`ProviderContext`)."""
    built: dict[str, ChannelProvider] = {}
    for channel, settings in channel_settings(section).items():
        factory = provider_factory(str(settings["provider"]))
        assert factory is not None  # channel_settings checked the name
        context = ProviderContext(
            channel=channel,
            root=root,
            environ=os.environ if environ is None else environ,
            database_url=database_url,
            unsubscribe_base=unsubscribe_base,
            clock=clock,
        )
        built[channel] = factory(settings, context)
    return built


def check_provider_settings(
    settings: Mapping[str, Any], context: ProviderContext
) -> list[SettingProblem] | None:
    """What the provider named in ``settings`` finds wrong with them without being built (see
    :class:`SettingsCheckingFactory`); ``None`` when it cannot tell (not installed, or a factory
    without ``check_settings``)."""
    factory = provider_factory(str(settings.get("provider")))
    if not isinstance(factory, SettingsCheckingFactory):
        return None
    own = {key: value for key, value in settings.items() if key != RATE}
    return list(factory.check_settings(own, context))


def list_content_campaigns(section: Mapping[str, Any]) -> dict[str, str]:
    """The campaigns whose email a configured provider sends as one content to a whole list
    (see :class:`ListContentFactory`), each with the setting that says so
    (``providers.email``); empty when ``section`` is malformed (reported elsewhere)."""
    found: dict[str, str] = {}
    try:
        chosen = channel_settings(section)
    except ConfigError:
        return found
    for channel, settings in chosen.items():
        factory = provider_factory(str(settings["provider"]))
        if isinstance(factory, ListContentFactory):
            for campaign in factory.list_campaigns(settings):
                found[campaign] = f"providers.{channel}"
    return found


def hint(name: str, choices: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for a near miss, else the list of choices."""
    names = sorted(choices)
    close = difflib.get_close_matches(str(name), names, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; choose one of: {', '.join(names)}" if names else ""
