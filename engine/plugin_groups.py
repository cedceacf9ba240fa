"""The entry-point groups through which installed packages extend followup, in one place (the
standard library alone: ``followup tick``'s quiet check reads them without loading the core)."""

from __future__ import annotations

PROVIDERS = "followup.providers"  # channel providers, by name (engine/providers.py)
COMMANDS = "followup.commands"  # command groups, by name (engine/cli/plugins.py)
TABLES = "followup.tables"  # the modules of integrations' tables (engine/storage/tables.py)
MIGRATIONS = "followup.migrations"  # the packages of integrations' migration branches
GROUPS = (PROVIDERS, COMMANDS, TABLES, MIGRATIONS)
