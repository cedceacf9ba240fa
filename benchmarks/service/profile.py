"""Where ``followup serve``'s time goes under the HTTP load of the benchmark.

    python -m benchmarks.service.profile [--backend sqlite|postgresql] [--order shuffled]
        [--seconds 30] [--system followup|floor]

Starts the service on a fresh database as ``make bench-service`` does, attaches two py-spy
samplers to it (wall clock with ``--idle``, and CPU without), drives the same ``/v1/batch`` load
for ``--seconds``, then sorts every sample into the steps of ingest
(:mod:`benchmarks.service.stacks`) and prints the shares: the group writer thread's wall time
(one writer stores every request, so its time per event bounds the throughput) and the CPU of
every thread. The raw stacks stay in ``--out`` (flamegraph.pl's collapsed format). py-spy is not
a project dependency: ``make bench-service-profile`` installs it
(``benchmarks/service/requirements.txt``).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.ingest.databases import BACKENDS, scratch_database, stored_events
from benchmarks.service.load import drive
from benchmarks.service.run import WORK, batch_requests
from benchmarks.service.servers import SYSTEMS, serving
from benchmarks.service.stacks import breakdown, render
from benchmarks.service.workload import ORDERS, LateSpec, ensure_late

PY_SPY = Path(sys.executable).parent / "py-spy"


def _sampler(pid: int, out: Path, rate: int, idle: bool) -> subprocess.Popen[bytes]:
    command = [str(PY_SPY), "record", "--pid", str(pid), "--threads", "--full-filenames"]
    command += ["--rate", str(rate), "--format", "raw", "--output", str(out)]
    if idle:
        command.append("--idle")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def profile(args: Any) -> dict[str, Any]:
    """Serve, sample, load; the load's figures and where the paths of the raw stacks are."""
    spec = LateSpec(args.customers, args.per_customer)
    requests = batch_requests(ensure_late(spec, WORK)[args.order], args.batch_size)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    wall, cpu = out / "wall.txt", out / "cpu.txt"
    with scratch_database(args.backend) as url, tempfile.TemporaryDirectory() as folder:
        with serving(args.system, url, Path(folder)) as service:
            samplers = [
                _sampler(service.process.pid, wall, args.rate, idle=True),
                _sampler(service.process.pid, cpu, args.rate, idle=False),
            ]
            time.sleep(1.0)  # let both attach
            started = time.perf_counter()
            run = drive(service.url, service.key, requests, args.concurrency, args.seconds)
            sampled = time.perf_counter() - started
            for sampler in samplers:
                sampler.send_signal(signal.SIGINT)
            for sampler in samplers:
                _, errors = sampler.communicate(timeout=60)
                if sampler.returncode not in (0, -signal.SIGINT):
                    raise RuntimeError(f"py-spy failed: {errors.decode()}")
        stored = stored_events(url)
    return {
        "backend": args.backend,
        "order": args.order,
        "system": args.system,
        "events": run.stored,
        "stored": stored,
        "seconds": run.seconds,
        "sampled_seconds": sampled,
        "events_per_second": run.stored / run.seconds,
        "rate": args.rate,
        "wall": str(wall),
        "cpu": str(cpu),
    }


def main(argv: list[str] | None = None) -> None:
    """Profile one service under load and print where its time went."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--order", choices=ORDERS, default="shuffled")
    parser.add_argument("--system", choices=SYSTEMS, default="followup")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=100, help="samples a second")
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--per-customer", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if shutil.which(str(PY_SPY)) is None:
        sys.exit(f"no py-spy at {PY_SPY}: make bench-service-profile installs it")
    if args.out is None:
        args.out = WORK / f"profile-{args.system}-{args.backend}-{args.order}"
    result = profile(args)
    result["breakdown"] = breakdown(Path(result["wall"]), Path(result["cpu"]), result)
    print(render(result))
    (args.out / "profile.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
