"""The project configuration, ``followup.yaml`` (see CAMPAIGN_FORMAT.md).

Every command reads ``followup.yaml`` from the current folder unless ``--config`` names another;
paths in it are relative to its own folder. Without a file, the embedded defaults apply: SQLite at
``followup.db``, UTC, ``campaigns/`` and ``templates/``. ``FOLLOWUP_DATABASE_URL`` overrides
``database_url``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import phonenumbers
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.clock import check_time_zone
from engine.errors import ConfigError
from engine.project_files import (
    CONFIG_FILE,
    DEFAULT_CAMPAIGNS,
    DEFAULT_DATABASE_URL,
    database_url,
)

# The largest batch an official client sends: rudder-sdk-python fills one up to 4 MiB of
# events (Segment's libraries stop at 500 KB), plus the envelope.
REQUEST_BYTES = 4 * 1024 * 1024 + 64 * 1024


class LimitsConfig(BaseModel):
    """``server.limits:``: what the HTTP ingest API accepts (by default, what the official
    Segment and RudderStack clients send: 32 KB an event, a RudderStack batch of 4 MB)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_bytes: int = Field(
        default=REQUEST_BYTES,
        gt=0,
        description="the largest request body (a batch), in bytes, decompressed",
    )
    event_bytes: int = Field(
        default=32 * 1024, gt=0, description="the largest single event, as JSON, in bytes"
    )
    rate: float | None = Field(
        default=None,
        gt=0,
        description="requests per second per write key without a rate of its own; none: no limit",
    )


class ServerConfig(BaseModel):
    """``server:``: where ``followup serve`` (and ``followup run``) listen, and the public address
    that unsubscribe links in emails point to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = Field(
        default=None, description="the address customers reach; default http://HOST:PORT"
    )
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @property
    def base_url(self) -> str:
        """The public address links start with."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class ProjectConfig(BaseModel):
    """``followup.yaml``. ``policies`` and ``providers`` are read by the campaign engine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "UTC"
    database_url: str = DEFAULT_DATABASE_URL
    campaigns: str = DEFAULT_CAMPAIGNS
    templates: str = "templates/"
    phone_region: str = Field(
        default="US", description="ISO country whose national phone numbers need no +prefix"
    )
    policies: dict[str, Any] = Field(default_factory=dict)
    providers: dict[str, Any] = Field(default_factory=dict)
    reports: dict[str, Any] = Field(default_factory=dict)
    server: ServerConfig = Field(default_factory=ServerConfig)

    _known_zone = field_validator("timezone")(check_time_zone)

    @field_validator("phone_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a phone region; use an ISO code such as US or FR")
        return value.upper()


class Project:
    """A loaded configuration with the folder its relative paths start from."""

    def __init__(self, config: ProjectConfig, root: Path) -> None:
        self.config = config
        self.root = root

    def path(self, relative: str) -> Path:
        """``relative`` (from the config) as a path from the project's folder."""
        return (self.root / relative).resolve()

    @property
    def database_url(self) -> str:
        """The database to use: the environment, then the config; SQLite paths made absolute."""
        return database_url(self.config.database_url, self.root)


def load_project(config_path: Path | None = None) -> Project:
    """The project for ``config_path``, or ``./followup.yaml``, or the defaults in this folder."""
    if config_path is None:
        candidate = Path.cwd() / CONFIG_FILE
        if not candidate.exists():
            return Project(ProjectConfig(), Path.cwd())
        config_path = candidate
    try:
        text = config_path.read_text()
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read the config: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{config_path}:{mark.line + 1}:{mark.column + 1}" if mark else str(config_path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{config_path}:1:1: the config must be a mapping of settings")
    try:
        config = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'config'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"{config_path}: {problems}") from exc
    return Project(config, config_path.resolve().parent)
