"""``python -m benchmarks.service.run``: the HTTP ingest API under concurrent load on loopback,
beside file ingest of the same events in the same run.

For each backend: file ingest of the synthetic workload (``followup ingest``'s path, in a child
process, fresh database, via benchmarks/ingest/measure.py); then ``followup serve`` in its own
process on another fresh database, a write key, and a closed-loop load generator
(:mod:`benchmarks.service.load`) posting the same events to ``/v1/batch`` (chunks of
``--batch-size``), then the workload's track events again with new messageIds one by one to
``/v1/track``. The events table is counted afterwards against what the 200s said.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks.ingest.children import REPO, run_python
from benchmarks.ingest.databases import BACKENDS, scratch_database, stored_events
from benchmarks.ingest.synthetic import SyntheticSpec, ensure_synthetic
from benchmarks.service.load import drive

WORK = REPO / "benchmarks" / ".work"
FOLLOWUP = str(Path(sys.executable).parent / "followup")
_CREATE_KEY = (
    "import sys; from datetime import UTC, datetime; from engine.storage.database import "
    "open_database; from engine.service.keys import KeyStore; "
    "print(KeyStore(open_database(sys.argv[1])).create('bench', None, datetime.now(UTC))[1])"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _file_ingest(backend: str, path: Path) -> dict[str, Any]:
    with scratch_database(backend) as url:
        output = run_python(
            "-m", "benchmarks.ingest.measure", "followup", url, str(path), "--batch-size=5000"
        )
        result: dict[str, Any] = orjson.loads(output.strip().splitlines()[-1])
        result["stored"] = stored_events(url)
    return result


def _requests(
    path: Path, batch_size: int
) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    messages = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    batches = [
        ("/v1/batch", orjson.dumps({"batch": messages[i : i + batch_size]}))
        for i in range(0, len(messages), batch_size)
    ]
    tracks = [
        ("/v1/track", orjson.dumps({**m, "messageId": f"{m['messageId']}-t"}))
        for m in messages
        if m.get("type") == "track"
    ]
    return batches, tracks


def _serve(url: str, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    (folder / "followup.yaml").write_text(orjson.dumps({"database_url": url}).decode())
    env = {k: v for k, v in os.environ.items() if k != "FOLLOWUP_DATABASE_URL"}
    log = (folder / "serve.log").open("wb")
    process = subprocess.Popen(
        [FOLLOWUP, "serve", "--port", str(port)], cwd=folder, env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"followup serve stopped: {(folder / 'serve.log').read_text()}")
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("followup serve did not come up in 60 s")
        time.sleep(0.1)


def _http_ingest(
    backend: str, batches: list[tuple[str, bytes]], tracks: list[tuple[str, bytes]], args: Any
) -> dict[str, Any]:
    with scratch_database(backend) as url, tempfile.TemporaryDirectory() as folder:
        key = run_python("-c", _CREATE_KEY, url).strip()
        process, base = _serve(url, Path(folder))
        try:
            batch_run = drive(base, key, batches, args.concurrency)
            track_run = drive(base, key, tracks[: args.track_events], args.concurrency)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        stored = stored_events(url)
    batch_events = sum(len(orjson.loads(body)["batch"]) for _, body in batches)
    result = {
        "batch": batch_run.summary(batch_events),
        "track": track_run.summary(min(len(tracks), args.track_events)),
        "stored": stored,
    }
    if stored != batch_run.accepted + track_run.accepted:
        print(f"warning: {backend}: the 200s accepted {batch_run.accepted + track_run.accepted:,}")
        print(f"events, the table holds {stored:,}")
    return result


def _table(results: dict[str, Any], args: Any) -> str:
    lines = [
        "| backend | path | requests/s | events/s | p50 ms | p99 ms | statuses |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for backend, result in results.items():
        file = result["file"]
        lines.append(
            f"| {backend} | file ingest (`followup ingest`) | – | "
            f"{file['events_per_second']:,.0f} | – | – | – |"
        )
        for name, label in (
            ("batch", f"`/v1/batch` ({args.batch_size}/request)"),
            ("track", "`/v1/track` (1/request)"),
        ):
            run = result["http"][name]
            statuses = ", ".join(f"{k}: {v:,}" for k, v in run["statuses"].items())
            lines.append(
                f"| {backend} | {label} | {run['requests_per_second']:,.0f} | "
                f"{run['events_per_second']:,.0f} | {run['p50_ms']:.1f} | "
                f"{run['p99_ms']:.1f} | {statuses} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run every backend, print a markdown table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--track-events", type=int, default=3_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args = parser.parse_args(argv)
    workload = ensure_synthetic(SyntheticSpec(args.events, args.customers), WORK)
    batches, tracks = _requests(workload.path, args.batch_size)
    results: dict[str, Any] = {}
    for backend in args.backends.split(","):
        print(f"{backend}: file ingest of {args.events:,} events ...", flush=True)
        file = _file_ingest(backend, workload.path)
        print(f"{backend}: HTTP, {args.concurrency} concurrent clients ...", flush=True)
        results[backend] = {"file": file, "http": _http_ingest(backend, batches, tracks, args)}
    print(_table(results, args))
    WORK.mkdir(parents=True, exist_ok=True)
    report = {
        "args": vars(args),
        "workload": {"path": str(workload.path), "mix": workload.mix},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_after": os.getloadavg()[0],
        },
        "results": results,
    }
    (WORK / "service-results.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
