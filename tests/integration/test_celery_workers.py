"""Scale-out on Celery with real brokers (Redis, RabbitMQ) and PostgreSQL: two worker processes
take the passes (of everyone, or one per partition) and ingest batches from the queue; each
welcome email is written exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kombu import Connection

from engine.workers.celery_app import (
    INGEST_TASK,
    PASS_TASK,
    beat_schedule,
    create_app,
    pass_arguments,
)
from tests.conftest import need_service
from tests.durable.harness import make_project
from tests.e2e.cli import FOLLOWUP

BROKERS = {
    "redis": "redis://127.0.0.1:6379/15",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}
USERS = 12


def _signup(user: str, stamp: str) -> list[dict[str, object]]:
    return [
        {
            "type": "identify",
            "userId": user,
            "messageId": f"{user}-identify",
            "timestamp": stamp,
            "traits": {"email": f"{user}@example.com", "consent": {"email": True}},
        },
        {
            "type": "track",
            "event": "Subscribed",
            "userId": user,
            "messageId": f"{user}-subscribed",
            "timestamp": stamp,
            "properties": {"list": "newsletter", "channel": "email"},
        },
    ]


def _wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.5)
    return False


@pytest.mark.external_service
@pytest.mark.parametrize(("broker", "partitions"), [("rabbitmq", 1), ("redis", 2)])
def test_two_workers_share_passes_and_ingest_from_the_broker(
    broker: str, partitions: int, tmp_path: Path, empty_postgres: str
) -> None:
    url = BROKERS[broker]
    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the broker
        need_service(broker, exc)
    project = make_project(tmp_path, ["welcome_series"])
    config = project / "followup.yaml"
    config.write_text(f"database_url: {empty_postgres}\n")
    queue = f"followup-test-{uuid.uuid4().hex[:8]}"
    app = create_app(config, url, queue=queue)
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("FOLLOWUP_DATABASE_URL", None)
    command = [FOLLOWUP, "--config", str(config), "worker", "--broker", url, "--queue", queue]
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = []
    for log in logs:
        with log.open("wb") as out:
            workers.append(
                subprocess.Popen(
                    command, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            )
    try:
        stamp = datetime.now(UTC).isoformat()
        messages = [m for i in range(USERS) for m in _signup(f"user-{i}", stamp)]
        app.send_task(INGEST_TASK, args=[messages[:USERS]])
        app.send_task(INGEST_TASK, args=[messages[USERS:]])
        app.send_task(INGEST_TASK, args=[messages])  # the same messages again: deduplicated
        outbox = project / "outbox" / "email"

        def enqueue_round() -> None:  # what beat does: one pass, or one per partition
            for args in pass_arguments(partitions):
                app.send_task(PASS_TASK, args=args)

        def delivered() -> int:
            for _ in range(2):
                enqueue_round()
            return len(list(outbox.glob("*.eml"))) if outbox.exists() else 0

        # the held-out customers (10%) get none: wait until the count stops growing
        assert _wait_for(lambda: delivered() >= USERS * 0.6, timeout=120)
        time.sleep(3)
        settled = len(list(outbox.glob("*.eml")))
        for _ in range(6):
            enqueue_round()
        time.sleep(5)
        files = sorted(path.name for path in outbox.glob("*.eml"))
        assert len(files) == settled == len(set(files))
        welcomed = {file.split("-")[0] for file in files}
        assert len(welcomed) == len(files)  # one welcome per journey, none twice
        if partitions == 1:  # once is enough (11 s of waiting)
            # a worker busy in a long pass (solo pool) sends no heartbeat meanwhile: stopped
            # a while, its peer must not fill the log with "missed heartbeat"
            workers[0].send_signal(signal.SIGSTOP)
            time.sleep(8)
            workers[0].send_signal(signal.SIGCONT)
            time.sleep(3)
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        app.close()
    text = "".join(log.read_text(errors="replace") for log in logs)
    where = text.find("Traceback")
    assert where < 0, text[where : where + 4000]
    assert "missed heartbeat" not in text


def test_beat_enqueues_a_pass_per_partition() -> None:
    assert beat_schedule(30.0, 1) == {
        "followup-pass": {"task": PASS_TASK, "schedule": 30.0, "args": ()}
    }
    split = beat_schedule(30.0, 3)
    assert [entry["args"] for entry in split.values()] == [("0/3",), ("1/3",), ("2/3",)]
    assert {entry["task"] for entry in split.values()} == {PASS_TASK}
