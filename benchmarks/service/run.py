"""``python -m benchmarks.service.run`` (``make bench-service``): followup's ingest against the
floor, with events in time order and shuffled, by file and over HTTP, in one run.

For each backend and each order of the same events (:mod:`benchmarks.service.workload`):

- **file**: ``followup ingest``'s path on the JSONL file, and the ingest floor (orjson and the
  backend's bulk insert), each in a child process on a fresh database
  (:mod:`benchmarks.ingest.measure`);
- **HTTP**: ``followup serve`` and the floor service (:mod:`benchmarks.service.floor_app`), each
  in its own process on a fresh database, driven by the same closed-loop load generator
  (:mod:`benchmarks.service.load`) with the same ``/v1/batch`` requests, until they run out or
  ``--duration`` seconds have passed.

Every case reports events/s over the run and per window of about ``--window`` seconds
(:mod:`benchmarks.service.windows`): first and last window, and last/first. The events table is
counted afterwards against what the system said it stored. Prints a markdown table and writes
every figure to ``benchmarks/.work/service-results.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks.ingest.children import REPO, run_python
from benchmarks.ingest.databases import BACKENDS, scratch_database, stored_events
from benchmarks.ingest.report import code_version, machine
from benchmarks.service.load import drive
from benchmarks.service.servers import SYSTEMS, serving
from benchmarks.service.windows import flatness
from benchmarks.service.workload import ORDERS, LateSpec, ensure_late

WORK = REPO / "benchmarks" / ".work"
PATHS = ("file", "http")
Requests = list[tuple[str, bytes]]


def batch_requests(path: Path, batch_size: int) -> Requests:
    """The file's messages as ``/v1/batch`` bodies of ``batch_size`` messages, in file order."""
    messages = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [
        ("/v1/batch", orjson.dumps({"batch": messages[i : i + batch_size]}))
        for i in range(0, len(messages), batch_size)
    ]


def _checked(system: str, case: str, reported: int, stored: int) -> None:
    if reported != stored:
        print(f"warning: {case} {system}: reported {reported:,} events, the table holds {stored:,}")


def file_case(system: str, backend: str, path: Path, args: Any) -> dict[str, Any]:
    """One file ingest, in a child process on a fresh database."""
    options = [f"--batch-size={args.file_batch_size}"]
    if args.duration:
        options.append(f"--seconds={args.duration}")
    with scratch_database(backend) as url:
        output = run_python("-m", "benchmarks.ingest.measure", system, url, str(path), *options)
        result: dict[str, Any] = orjson.loads(output.strip().splitlines()[-1])
        result["stored"] = stored_events(url)
    _checked(system, f"{backend} file", result["events"], result["stored"])
    result["flatness"] = flatness(result.pop("timeline"), result["seconds"], args.window, True)
    return result


def http_case(system: str, backend: str, requests: Requests, args: Any) -> dict[str, Any]:
    """One service on a fresh database under the load generator for up to ``args.duration``."""
    with scratch_database(backend) as url, tempfile.TemporaryDirectory() as folder:
        with serving(system, url, Path(folder)) as service:
            run = drive(service.url, service.key, requests, args.concurrency, args.duration or None)
        stored = stored_events(url)
    _checked(system, f"{backend} http", run.stored, stored)
    result = run.summary(run.stored)
    result["stored"] = stored
    result["flatness"] = flatness(run.completions, run.seconds, args.window, False)
    return result


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median events/s (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda run: float(run["events_per_second"]))
    return ordered[(len(ordered) - 1) // 2]


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _windows(case: dict[str, Any]) -> str:
    shape = case["flatness"]
    ratio = shape["last_over_first"]
    tail = "" if ratio is None else f" ({ratio:.2f})"
    return f"{_rate(shape['first'])} → {_rate(shape['last'])}{tail}"


def markdown_table(results: list[dict[str, Any]]) -> str:
    """One row per backend, path and order: followup and the floor side by side."""
    header = (
        "| backend | path | order | followup events | followup events/s | floor events/s "
        "| followup/floor | followup first → last window (last/first) | floor first → last |"
    )
    lines = [
        header,
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in results:
        ours, floor = row["followup"], row["floor"]
        lines.append(
            f"| {row['backend']} | {row['path']} | {row['order']} | {ours['events']:,} | "
            f"{_rate(ours['events_per_second'])} | {_rate(floor['events_per_second'])} | "
            f"{ours['events_per_second'] / floor['events_per_second']:.2f}× | "
            f"{_windows(ours)} | {_windows(floor)} |"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--per-customer", type=int, default=100, help="events per customer")
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds per case at most (0: no limit)"
    )
    parser.add_argument("--window", type=float, default=5.0, help="seconds per window")
    parser.add_argument("--batch-size", type=int, default=100, help="events per request")
    parser.add_argument("--file-batch-size", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16, help="HTTP clients")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--orders", default=",".join(ORDERS))
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each case; the table shows the median"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run every case, print a markdown table, write the JSON."""
    args = _parser().parse_args(argv)
    spec = LateSpec(args.customers, args.per_customer)
    files = ensure_late(spec, WORK)
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    results: list[dict[str, Any]] = []
    for backend in args.backends.split(","):
        for order in args.orders.split(","):
            requests = batch_requests(files[order], args.batch_size)
            for path in args.paths.split(","):
                runs: dict[str, list[dict[str, Any]]] = {system: [] for system in SYSTEMS}
                for _ in range(args.repeat):
                    for system in reversed(SYSTEMS):  # the floor first, then followup
                        print(f"{backend} {path} {order}: {system} ...", flush=True)
                        clock = time.perf_counter()
                        if path == "file":
                            case = file_case(system, backend, files[order], args)
                        else:
                            case = http_case(system, backend, requests, args)
                        runs[system].append(case)
                        print(
                            f"  {case['events']:,} events in {case['seconds']:.1f} s: "
                            f"{_rate(case['events_per_second'])}/s, windows "
                            f"{' '.join(_rate(r) for r in case['flatness']['windows'])} "
                            f"({time.perf_counter() - clock:.0f} s with set-up)",
                            flush=True,
                        )
                row: dict[str, Any] = {"backend": backend, "path": path, "order": order}
                for system, done in runs.items():
                    row[system] = {**_median(done), "runs": done}
                results.append(row)
    table = markdown_table(results)
    print(table)
    WORK.mkdir(parents=True, exist_ok=True)
    report = {
        "args": vars(args),
        "workload": {
            "customers": spec.customers,
            "per_customer": spec.per_customer,
            "seed": spec.seed,
            "files": {order: str(path) for order, path in files.items()},
        },
        "started": started.isoformat(),
        "engine_commit": code_version(),
        "machine": {**machine(), "load_before": load_before, "load_after": os.getloadavg()},
        "results": results,
        "table": table,
    }
    (WORK / "service-results.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
