"""The channel providers of a project, found through the ``followup.providers`` entry points.

Each entry point names a function ``(root: Path, section: Mapping) -> dict[channel, provider]``
that builds providers from the ``providers:`` section of ``followup.yaml``; the built-in file
outbox is one (see pyproject.toml), a third-party package can add its own. The core never imports
an integration: it only calls what the entry points name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from engine.channels import ChannelProvider
from engine.errors import ConfigError

GROUP = "followup.providers"
Builder = Callable[[Path, Mapping[str, Any]], dict[str, ChannelProvider]]


def provider_builders() -> list[tuple[str, Builder]]:
    """Every registered builder, by entry point name."""
    found = sorted(entry_points(group=GROUP), key=lambda point: point.name)
    return [(point.name, point.load()) for point in found]


def build_providers(root: Path, section: Mapping[str, Any]) -> dict[str, ChannelProvider]:
    """The providers of every channel, from all builders (a later name wins a channel)."""
    builders = provider_builders()
    if not builders:
        raise ConfigError(
            f"no channel providers are installed (entry point group {GROUP!r}); "
            "reinstall followup with `pip install -e .`"
        )
    providers: dict[str, ChannelProvider] = {}
    for _name, builder in builders:
        providers.update(builder(root, section))
    return providers
