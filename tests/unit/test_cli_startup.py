"""What ``followup`` imports before a command runs: each command's module only when it is looked
up, so ``followup tick`` from cron does not pay for ``report``, ``simulate`` or the service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]

# In a fresh interpreter: import the app, look one command up as `followup NAME` would, and list
# the modules loaded by then.
_PROBE = """
import sys
import orjson
import typer.main
from engine.cli.app import app

group = typer.main.get_command(app)
names = sys.argv[1:]
with group.make_context("followup", [names[0]]) as ctx:
    for name in names:
        assert group.get_command(ctx, name) is not None, name
    print(orjson.dumps(sorted(sys.modules)).decode())
"""


def loaded_after_looking_up(*names: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(orjson.loads(done.stdout))


def test_tick_loads_neither_the_engine_nor_the_other_commands_before_it_runs() -> None:
    loaded = loaded_after_looking_up("tick")
    assert "engine.cli.run_command" in loaded
    other_commands = {
        "engine.cli.report_command",
        "engine.cli.simulate_command",
        "engine.cli.status_command",
        "engine.cli.customers_command",
        "engine.cli.ingest_command",
        "engine.cli.validate_command",
        "integrations.calls.cli",
    }
    heavy = {"sqlalchemy", "jinja2", "croniter", "engine.api", "engine.campaigns.validate"}
    assert not loaded & (other_commands | heavy)


def test_a_plugin_command_is_found_by_its_entry_point() -> None:
    loaded = loaded_after_looking_up("calls")
    assert "integrations.calls.cli" in loaded
    assert "engine.cli.run_command" not in loaded


def test_every_built_in_command_is_there() -> None:
    from engine.cli.app import COMMANDS

    loaded = loaded_after_looking_up(*COMMANDS)
    assert {"engine.cli.run_command", "engine.cli.report_command"} <= loaded
