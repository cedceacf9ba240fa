"""The commands: ``followup keys create|list|revoke``, ``followup serve`` and
``followup run --serve`` as subprocesses, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
import typer
from typer.testing import CliRunner, Result

from engine.api import Followup
from engine.cli.app import app
from engine.cli.keys_command import parse_rate
from engine.config import Project, ProjectConfig
from tests.durable.harness import make_project
from tests.e2e.cli import FOLLOWUP


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if k != "FOLLOWUP_DATABASE_URL"}
    return subprocess.Popen(
        [FOLLOWUP, *args],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_healthy(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the service did not come up"
        time.sleep(0.1)


def invoke(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """``followup ARGS`` in ``cwd``, in this process (the real command, no subprocess)."""
    here = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, list(args), env={"COLUMNS": "250", **(env or {})})
    finally:
        os.chdir(here)


def _keys(cwd: Path, *args: str) -> Result:
    """``followup keys ARGS`` in ``cwd``."""
    return invoke(cwd, "keys", *args)


def _create_key(cwd: Path, *args: str) -> tuple[str, str]:
    created = _keys(cwd, "create", *args)
    assert created.exit_code == 0, created.output
    first, key = created.stdout.strip().splitlines()
    return first.split()[1], key


def test_keys_create_list_revoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOLLOWUP_DATABASE_URL", raising=False)
    key_id, key = _create_key(tmp_path, "--name", "shop backend", "--rate", "600/m")
    assert key.startswith("fu_")
    listed = _keys(tmp_path, "list")
    assert listed.exit_code == 0
    assert key_id in listed.stdout
    assert "shop backend" in listed.stdout
    assert "10/s" in listed.stdout
    assert key not in listed.stdout  # only a prefix is ever shown again
    revoked = _keys(tmp_path, "revoke", key_id)
    assert revoked.exit_code == 0
    assert f"revoked {key_id}" in revoked.stdout
    unknown = _keys(tmp_path, "revoke", "key_nope")
    assert unknown.exit_code == 2
    assert "no write key 'key_nope'" in unknown.output


def test_rates_are_read_per_second() -> None:
    assert parse_rate("10/s") == 10
    assert parse_rate("600/m") == 10
    assert parse_rate("7200 / h") == 2
    assert parse_rate("2.5") == 2.5
    for bad in ("fast", "0/s", "-1", "10/d"):
        with pytest.raises(typer.BadParameter):
            parse_rate(bad)


@dataclass
class Serving:
    """A ``followup serve`` process with a write key; ``stderr`` once it has stopped."""

    url: str
    key: str
    process: subprocess.Popen[str]
    stderr: str = ""


@contextmanager
def serving(root: Path) -> Iterator[Serving]:
    """``followup serve`` in ``root`` with a new write key, stopped with SIGTERM at the end."""
    _, key = _create_key(root)
    port = _free_port()
    process = _start(root, "serve", "--port", str(port))
    served = Serving(f"http://127.0.0.1:{port}", key, process)
    try:
        _wait_healthy(served.url, process)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        _, served.stderr = process.communicate(timeout=60)


def test_serve_ingests_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with serving(tmp_path) as service:
        answer = httpx.post(
            f"{service.url}/v1/track",
            auth=(service.key, ""),
            json={"event": "Product Viewed", "userId": "u1", "messageId": "m1"},
            headers={"X-Request-Id": "cli-test-1"},
        )
        assert answer.json() == {"success": True, "accepted": 1, "duplicates": 0}
    stderr = service.stderr
    assert service.process.returncode == 0, stderr
    lines = [orjson.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    (logged,) = [line for line in lines if line.get("request_id") == "cli-test-1"]
    assert (logged["route"], logged["status"]) == ("/v1/track", 200)
    assert any("Shutting down" in line["msg"] for line in lines)
    followup = Followup(Project(ProjectConfig(), tmp_path))
    try:
        profile = followup.profile("u1")
    finally:
        followup.close()
    assert profile is not None
    assert [stored.event.name for stored in profile.recent_events] == ["Product Viewed"]


def test_run_serve_answers_beside_the_engine(tmp_path: Path) -> None:
    project = make_project(tmp_path, ["welcome_series"])
    port = _free_port()
    (project / "followup.yaml").write_text(f"server:\n  port: {port}\n")
    service = _start(project, "run", "--serve", "--interval", "0.5")
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", service)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 200
    finally:
        service.send_signal(signal.SIGTERM)
        stdout, stderr = service.communicate(timeout=60)
    assert service.returncode == 0, stderr
    assert f"serving the HTTP API on http://127.0.0.1:{port}" in stdout
    assert "followup run: stopped" in stdout


def test_an_80_column_terminal_gets_whole_ids_and_unbroken_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tables fit the terminal without cutting what a command takes back (a key's id); a message
    line is left for the terminal to wrap, never broken by followup."""
    from engine.cli import context

    monkeypatch.setattr(context.console, "width", 80)
    monkeypatch.delenv("FOLLOWUP_DATABASE_URL", raising=False)
    long_name = "the shop's backend in the north-western warehouse " * 2
    created = _keys(tmp_path, "create", "--name", long_name.strip(), "--rate", "600/m")
    assert created.exit_code == 0, created.output
    first = created.stdout.splitlines()[0]
    assert first.endswith("; the key, shown only now:") and long_name.strip() in first
    key_id = first.split()[1]
    dashboard_id = _create_key(tmp_path, "--role", "dashboard", "--name", "marketing")[0]
    listed = _keys(tmp_path, "list").stdout
    assert max(len(line) for line in listed.splitlines()) <= 80, listed
    ids = [line.split()[0] for line in listed.splitlines() if line.startswith(" key_")]
    assert sorted(ids) == sorted([key_id, dashboard_id]), listed
    assert "dashboard" in listed and "fu_" in listed
