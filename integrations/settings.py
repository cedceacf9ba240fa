"""Reading one provider's settings (``providers.<channel>`` in ``followup.yaml``) into a
pydantic model, with errors that name the setting and what to write instead."""

from __future__ import annotations

import difflib
import ssl
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.channels import ProviderContext
from engine.errors import ConfigError


class ProviderSettings(BaseModel):
    """The settings every provider has: its name. Subclasses add their own."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    provider: str


Settings = TypeVar("Settings", bound=ProviderSettings)


def read_settings(
    model: type[Settings], settings: Mapping[str, Any], context: ProviderContext
) -> Settings:
    """``settings`` as ``model``; a :class:`ConfigError` naming ``providers.<channel>.<key>``."""
    where = f"providers.{context.channel}"
    known = list(model.model_fields)
    for key in settings:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(known)}"
            raise ConfigError(f"{where}: unknown setting {key!r}; {hint}")
    try:
        return model.model_validate(dict(settings))
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(problems) from None


def tls_context(ca_file: str | None, context: ProviderContext, where: str) -> ssl.SSLContext:
    """The TLS settings of a provider: the system's CAs, or the private CA's certificates in
    ``ca_file`` (relative to the project folder)."""
    if ca_file is None:
        return ssl.create_default_context()
    path = context.root / ca_file
    try:
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ConfigError(
            f"{where}.ca_file: cannot read {path} as PEM certificates ({reason}); "
            "name the private CA's certificate file"
        ) from None
