"""Ingest throughput of followup next to the floor, on SQLite and PostgreSQL, in one run.

    python -m benchmarks.ingest.run [--quick] [--events N] [--customers N]

Workloads: the real sample (``build/sample/events.jsonl``, built from ``../shared/data`` when
missing) and a seeded synthetic file in ``benchmarks/.work/``. Every measurement runs in its own
process against a fresh database. Prints a markdown table and writes
``benchmarks/.work/ingest-results.json``. This process stays small on purpose (see
:mod:`benchmarks.ingest.children`): it never imports the engine.
"""

from __future__ import annotations

import argparse
import os
import resource
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks.ingest.children import REPO, run_python
from benchmarks.ingest.databases import BACKENDS, scratch_database, stored_events
from benchmarks.ingest.measure import SYSTEMS
from benchmarks.ingest.report import code_version, machine, markdown_table, ratios
from benchmarks.ingest.synthetic import SEED

WORK = REPO / "benchmarks" / ".work"
SAMPLE = REPO / "build" / "sample" / "events.jsonl"
DATA = REPO.parent / "shared" / "data"
_ENGINE_BATCH_SIZE = (
    "from benchmarks.ingest.measure import engine_batch_size; print(engine_batch_size())"
)
_BUILD_SAMPLE = (
    "import sys; from pathlib import Path; from engine.sample_data import build_sample; "
    "s = build_sample(Path(sys.argv[1]), Path(sys.argv[2])); "
    "print(f'built {s.path}: {s.events:,} events of {s.customers:,} customers')"
)


def ensure_sample(path: Path, data_dir: Path) -> Path | None:
    """The real sample, built when missing; ``None`` when it cannot be."""
    if path.exists():
        return path
    try:
        print(run_python("-c", _BUILD_SAMPLE, str(data_dir), str(path)).strip())
    except RuntimeError as exc:
        print(f"note: no sample at {path} and it could not be built; skipped\n{exc}")
        return None
    return path


def _count_label(count: int) -> str:
    """``1000000`` -> ``1M``, ``100000`` -> ``100k``."""
    if count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count % 1000 == 0:
        return f"{count // 1000}k"
    return f"{count:,}"


def _lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def _synthetic(events: int, customers: int, seed: int) -> dict[str, Any]:
    """The synthetic workload, generated in a child process unless already there."""
    args = [f"--events={events}", f"--customers={customers}", f"--seed={seed}"]
    found = orjson.loads(run_python("-m", "benchmarks.ingest.synthetic", str(WORK), *args))
    return {
        "name": f"synthetic {_count_label(events)}",
        "path": Path(found["path"]),
        "lines": events,
        "customers": customers,
        "shoppers_seen": found["shoppers_seen"],
        "mix": found["mix"],
        "seed": seed,
    }


def _measure(system: str, backend: str, path: Path, batch_size: int) -> dict[str, Any]:
    """One measurement in a child process, on a fresh database, checked against the table."""
    load = os.getloadavg()[0]
    code = code_version()
    with scratch_database(backend) as url:
        args = [system, url, str(path), f"--batch-size={batch_size}"]
        output = run_python("-m", "benchmarks.ingest.measure", *args)
        result: dict[str, Any] = orjson.loads(output.strip().splitlines()[-1])
        result["stored"] = stored_events(url)
    result["load_before"] = load  # 1-minute load average: another job on the box shows here
    result["code"] = code
    if result["stored"] != result["events"]:
        print(
            f"warning: {system}/{backend} reported {result['events']:,} events, "
            f"the table holds {result['stored']:,}"
        )
    return result


def main(argv: list[str] | None = None) -> None:
    """Build the workloads, run every measurement, print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="synthetic 100k events / 10k customers"
    )
    parser.add_argument("--events", type=int, help="synthetic events (default 1,000,000)")
    parser.add_argument("--customers", type=int, help="synthetic customers (default 100,000)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--batch-size", type=int, help="events per transaction (default: followup's own)"
    )
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    parser.add_argument("--no-sample", action="store_true", help="skip the real sample")
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    args = parser.parse_args(argv)
    events = args.events or (100_000 if args.quick else 1_000_000)
    customers = args.customers or (10_000 if args.quick else 100_000)
    backends = [b for b in args.backends.split(",") if b]
    batch_size = args.batch_size or int(run_python("-c", _ENGINE_BATCH_SIZE))

    host = machine()  # before the runs: the code measured is the code at the start
    workloads: list[dict[str, Any]] = []
    sample = None if args.no_sample else ensure_sample(args.sample, args.data_dir)
    if sample is not None:
        workloads.append({"name": "sample", "path": sample, "lines": _lines(sample)})
    workloads.append(_synthetic(events, customers, args.seed))

    results: list[dict[str, Any]] = []
    for workload in workloads:
        for backend in backends:
            for system in reversed(SYSTEMS):  # the floor first
                print(f"{workload['name']} / {backend} / {system} ...", flush=True)
                result = _measure(system, backend, workload["path"], batch_size)
                results.append(
                    {"workload": workload["name"], "backend": backend, "system": system, **result}
                )
                print(f"  {result['events']:,} events in {result['seconds']:.1f} s", flush=True)

    table = markdown_table(results)
    print()
    print(table)
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "ingest-results.json"
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": host,
        "batch_size": batch_size,
        "orchestrator_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workloads": [{**w, "path": str(w["path"])} for w in workloads],
        "results": results,
        "ratios": [
            {
                "workload": w,
                "backend": b,
                "followup_over_floor": r,
                "followup_over_row_floor": ratios(results, "row-floor").get((w, b)),
            }
            for (w, b), r in ratios(results).items()
        ],
        "table": table,
    }
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"\nresults written to {out}")


if __name__ == "__main__":
    main()
