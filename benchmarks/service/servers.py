"""The two HTTP services under test, each in its own process on a database of its own:
``followup serve`` and the floor (:mod:`benchmarks.service.floor_app`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from benchmarks.ingest.children import REPO, run_python

SYSTEMS = ("followup", "floor")
FOLLOWUP = str(Path(sys.executable).parent / "followup")
_CREATE_KEY = (
    "import sys; from datetime import UTC, datetime; from engine.storage.database import "
    "open_database; from engine.service.keys import KeyStore; "
    "print(KeyStore(open_database(sys.argv[1])).create('bench', None, datetime.now(UTC))[1])"
)


@dataclass(frozen=True, slots=True)
class Running:
    """A service that answers: its process, base URL and write key."""

    process: subprocess.Popen[bytes]
    url: str
    key: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _command(system: str, database_url: str, folder: Path, port: int) -> list[str]:
    if system == "followup":
        (folder / "followup.yaml").write_text(orjson.dumps({"database_url": database_url}).decode())
        return [FOLLOWUP, "serve", "--port", str(port)]
    module = "benchmarks.service.floor_app"
    return [sys.executable, "-m", module, database_url, "--port", str(port)]


@contextmanager
def serving(system: str, database_url: str, folder: Path) -> Iterator[Running]:
    """``system`` serving the database at ``database_url`` (which gets a write key), until the
    block ends; then SIGTERM, and the process finishes what it holds."""
    key = run_python("-c", _CREATE_KEY, database_url).strip()
    port = _free_port()
    command = _command(system, database_url, folder, port)
    env = {k: v for k, v in os.environ.items() if k != "FOLLOWUP_DATABASE_URL"}
    log_path = folder / f"{system}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=folder if system == "followup" else REPO, env=env, stdout=log, stderr=log
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{system} stopped: {log_path.read_text()}")
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{system} did not come up in 60 s")
            time.sleep(0.1)
        yield Running(process, base, key)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
