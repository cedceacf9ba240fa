"""A Celery worker closes the providers it opened (and the database pool) when it shuts down:
with the solo pool (one process) and with prefork children, on Redis and RabbitMQ. The provider
is a recording double installed through a real ``followup.providers`` entry point."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from kombu import Connection

from engine.workers.celery_app import PASS_TASK, create_app
from tests.conftest import need_service
from tests.durable.harness import ROOT, make_project
from tests.e2e.cli import FOLLOWUP
from tests.integration.closing_provider import install_entry_point

BROKERS = {
    "redis": "redis://127.0.0.1:6379/15",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}


def _reach(url: str, broker: str) -> None:
    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the broker
        need_service(broker, exc)


def _lines(record: Path, what: str) -> set[str]:
    if not record.exists():
        return set()
    return {line.split()[1] for line in record.read_text().splitlines() if line.startswith(what)}


@pytest.mark.external_service
@pytest.mark.parametrize("concurrency", [1, 2], ids=["solo", "prefork"])
@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_worker_closes_the_providers_it_opened_when_it_stops(
    broker: str, concurrency: int, tmp_path: Path
) -> None:
    url = BROKERS[broker]
    _reach(url, broker)
    project = make_project(tmp_path / "project", ["welcome_series"])
    config = project / "followup.yaml"
    config.write_text("providers:\n  ads: {provider: closing, record: closes.log}\n")
    record = project / "closes.log"
    plugins = install_entry_point(tmp_path / "plugins")
    queue = f"followup-test-{uuid.uuid4().hex[:8]}"
    app = create_app(config, url, queue=queue)
    env = {k: v for k, v in os.environ.items() if k != "FOLLOWUP_DATABASE_URL"}
    env["PYTHONPATH"] = os.pathsep.join([str(plugins), str(ROOT)])
    command = [FOLLOWUP, "--config", str(config), "worker", "--broker", url, "--queue", queue]
    command += ["--concurrency", str(concurrency)]
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            command, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 90
        while not _lines(record, "opened") and time.monotonic() < deadline:
            app.send_task(PASS_TASK)
            time.sleep(1)
        opened = _lines(record, "opened")
        assert opened, log.read_text(errors="replace")[-4000:]
        assert not _lines(record, "closed")  # kept open between tasks
        # solo runs tasks in the worker process itself, prefork in its children
        assert (str(worker.pid) in opened) == (concurrency == 1)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
        app.close()
    text = log.read_text(errors="replace")
    assert worker.returncode == 0, text[-4000:]
    where = text.find("Traceback")
    assert where < 0, text[where : where + 4000]
    # every process that opened the project closed its providers, once
    closed = record.read_text().splitlines()
    assert _lines(record, "closed") == _lines(record, "opened")
    assert sum(line.startswith("closed") for line in closed) == len(_lines(record, "opened"))
