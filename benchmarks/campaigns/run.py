"""Campaign engine throughput: followup's ``simulate`` next to a bare baseline, durable-rules and
rule-engine on the same abandoned-cart workload, in one run.

    python -m benchmarks.campaigns.run [--events N] [--customers N] [--jobs 1|2]

Workloads: the real sample (``build/sample/events.jsonl``, built from ``../shared/data`` when
missing) with the example campaigns, and a seeded synthetic stream in ``benchmarks/.work/``
(``benchmarks.campaigns.workload``) with generated campaign sets. Every measurement runs in its
own process (:mod:`benchmarks.campaigns.measure`); this one never imports the engine. Prints
markdown and writes ``benchmarks/.work/campaigns-results.json``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from benchmarks.campaigns.campaign_files import write_campaigns
from benchmarks.campaigns.report import machine, markdown_table, summary_text
from benchmarks.ingest.children import REPO, run_python
from benchmarks.ingest.run import ensure_sample
from benchmarks.ingest.synthetic import SEED

WORK = REPO / "benchmarks" / ".work"
CACHE = WORK / "cache"
SETS = WORK / "campaign-sets"
SAMPLE = REPO / "build" / "sample" / "events.jsonl"
DATA = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "campaigns"


@dataclass
class Job:
    """One measurement to make: what to run, and how the table names it."""

    key: str
    workload: str
    system: str
    label: str
    args: list[str] = field(default_factory=list)


def _count_label(count: int) -> str:
    """``1000000`` -> ``1M``, ``100000`` -> ``100k``."""
    if count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count % 1000 == 0:
        return f"{count // 1000}k"
    return f"{count:,}"


def _event_triggered_examples() -> Path:
    """The example campaigns triggered by an event (not a schedule or a segment), copied."""
    folder = SETS / "examples-event-triggered"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for path in sorted(EXAMPLES.glob("*.yaml")):
        trigger = (yaml.safe_load(path.read_text()) or {}).get("trigger") or {}
        if "event" in trigger:
            shutil.copy(path, folder / path.name)
    return folder


def _jobs(args: argparse.Namespace, sample: Path | None, synthetic: dict[str, Any]) -> list[Job]:
    """Every measurement of the run, in the order they run."""
    jobs: list[Job] = []
    if sample is not None:
        examples = sorted(EXAMPLES.glob("*.yaml"))
        budget = f"--budget={args.sample_budget}"
        common = [str(sample), str(CACHE)]
        jobs.append(
            Job("sample-examples", "sample", "followup", f"{len(examples)} examples",
                [*common, f"--campaigns={EXAMPLES}", budget])
        )  # fmt: skip
        triggered = _event_triggered_examples()
        count = len(list(triggered.glob("*.yaml")))
        jobs.append(
            Job("sample-event-examples", "sample", "followup", f"{count} event-triggered examples",
                [*common, f"--campaigns={triggered}", budget])
        )  # fmt: skip
    name, common = synthetic["name"], [str(synthetic["path"]), str(CACHE)]
    limit = args.rule_engine_100_events
    hundred_label = "100 rules" + (f", first {limit:,} events" if limit else "")
    jobs += [
        Job("baseline", name, "baseline", "1", common),
        Job("durable-rules", name, "durable-rules", "1", common),
        Job("rule-engine-1", name, "rule-engine", "1 rule", [*common, "--rules=1"]),
        Job("rule-engine-100", name, "rule-engine", hundred_label,
            [*common, "--rules=100", *([f"--limit={limit}"] if limit else [])]),
    ]  # fmt: skip
    jobs += [  # the abandoned cart cut to its first rule (wait 1h, email)
        Job("baseline-one-rule", name, "baseline", "1 rule", [*common, "--one-rule"]),
        Job("durable-rules-one-rule", name, "durable-rules", "1 rule", [*common, "--one-rule"]),
    ]
    sets = [("followup-1", "idle", 1, "1"), ("followup-100", "idle", 100, "1 + 99 idle")]
    sets += [("followup-one-rule", "one-rule", 1, "1 rule")]
    sets += [("followup-10", "idle", 10, "1 + 9 idle")]
    sets += [("followup-10-listening", "listening", 10, "10 listening")]
    for key, kind, count, label in sets:
        folder = write_campaigns(SETS / key, kind, count)
        budget = f"--budget={args.timeout}"
        jobs.append(Job(key, name, "followup", label, [*common, f"--campaigns={folder}", budget]))
    return jobs


def _measure(job: Job) -> dict[str, Any]:
    """One measurement in a child process."""
    load = os.getloadavg()[0]
    started = time.time()
    output = run_python("-m", "benchmarks.campaigns.measure", job.system, *job.args)
    result: dict[str, Any] = orjson.loads(output.strip().splitlines()[-1])
    result.update(
        key=job.key,
        workload=job.workload,
        system=job.system,
        label=job.label,
        load_before=load,
        started=datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
    )
    shown = "did not finish" if not result["finished"] else f"{result['events_per_second']:,.0f}/s"
    print(f"  {job.key}: {result['events']:,} events in {result['seconds']:.1f} s ({shown})")
    return result


def _run_all(jobs: list[Job], parallel: int) -> list[dict[str, Any]]:
    """The jobs: followup's synthetic runs ``parallel`` at a time (1 and 100 campaigns side by
    side, then 10 and 10 listening), everything else alone."""
    results: dict[str, dict[str, Any]] = {}
    alone = [job for job in jobs if not job.key.startswith("followup-")]
    paired = [job for job in jobs if job.key.startswith("followup-")]
    for job in alone:
        print(f"{job.workload} / {job.system} / {job.label} ...", flush=True)
        results[job.key] = _measure(job)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for start in range(0, len(paired), parallel):
            group = paired[start : start + parallel]
            names = " and ".join(f"{job.system} / {job.label}" for job in group)
            print(f"{group[0].workload}: {names} ...", flush=True)
            for job, result in zip(group, pool.map(_measure, group), strict=False):
                result["concurrent_with"] = [other.key for other in group if other is not job]
                results[job.key] = result
    return [results[job.key] for job in jobs]


def main(argv: list[str] | None = None) -> None:
    """Build the workloads, run every measurement, print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", "0")))
    parser.add_argument("--customers", type=int, help="default: events / 10")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--jobs", type=int, default=2, help="followup runs side by side (1|2)")
    parser.add_argument("--no-sample", action="store_true", help="skip the real sample")
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--sample-budget", type=float, default=120.0)
    parser.add_argument("--rule-engine-100-events", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=1500.0, help="per followup run, s")
    args = parser.parse_args(argv)
    events = args.events or 1_000_000
    customers = args.customers or events // 10
    if args.rule_engine_100_events is None:
        args.rule_engine_100_events = min(events, 100_000)
    if args.rule_engine_100_events >= events:
        args.rule_engine_100_events = 0

    began = time.time()
    host = machine()  # before the runs: the code measured is the code at the start
    sample = None if args.no_sample else ensure_sample(args.sample, args.data_dir)
    workload = orjson.loads(
        run_python(
            "-m", "benchmarks.campaigns.workload", str(WORK),
            f"--events={events}", f"--customers={customers}", f"--seed={args.seed}",
        )
    )  # fmt: skip
    synthetic = {**workload, "name": f"synthetic {_count_label(events)}", "customers": customers}
    for path in filter(None, (sample, Path(workload["path"]))):
        print(run_python("-m", "benchmarks.campaigns.records", str(path), str(CACHE)).strip())
    jobs = _jobs(args, sample, synthetic)
    results = _run_all(jobs, max(1, args.jobs))

    table, summary = markdown_table(results), summary_text(results)
    minutes = (time.time() - began) / 60
    print(f"\n{table}\n\n{summary}\n\nwhole run: {minutes:.1f} min")
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "campaigns-results.json"
    report = {
        "when": datetime.fromtimestamp(began, UTC).isoformat(timespec="seconds"),
        "minutes": minutes,
        "machine": host,
        "orchestrator_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "synthetic": synthetic,
        "sample": str(sample) if sample else None,
        "results": results,
        "table": table,
        "summary": summary,
    }
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
