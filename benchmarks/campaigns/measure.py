"""One measurement in its own process, so its peak memory is its own:

    python -m benchmarks.campaigns.measure SYSTEM FILE CACHE_DIR [--campaigns DIR] [--rules N]
        [--limit N] [--budget SECONDS] [--one-rule]

prints one JSON object. Loading the input (followup's ``Event`` objects or the peers' records,
from the caches :mod:`benchmarks.campaigns.records` builds), importing and setting up happen
before the clock starts; the clock covers the run alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from benchmarks.ingest.measure import _hwm_mib, _peak_mib

SYSTEMS = ("followup", "baseline", "durable-rules", "rule-engine")


def _prepare(args: argparse.Namespace) -> tuple[int, Callable[[], dict[str, Any]]]:
    """(events, the measured call) for the system named in ``args``."""
    if args.system == "followup":
        from benchmarks.campaigns import followup_system
        from benchmarks.campaigns.records import load_events

        events = load_events(args.file, args.cache_dir, args.limit)
        return len(events), followup_system.prepare(
            events, args.campaigns, args.budget, args.workers
        )
    from benchmarks.campaigns.records import load_records

    records = load_records(args.file, args.cache_dir, args.limit)
    if args.system == "baseline":
        from benchmarks.campaigns.baseline import AbandonedCart

        machine = AbandonedCart(one_rule=args.one_rule)
        count = machine.run
        run: Callable[[], Any] = lambda: count(records)
    elif args.system == "durable-rules":
        from benchmarks.campaigns import durable_system

        run = durable_system.prepare(records, args.one_rule)
    else:
        from benchmarks.campaigns import rule_engine_system

        run = rule_engine_system.prepare(records, args.rules)

    def counted() -> dict[str, Any]:
        counts = run()
        return {"events": len(records), "finished": True, "counts": dict(sorted(counts.items()))}

    return len(records), counted


def _own_peak_mib() -> float:
    """This process's peak RSS since it started (``VmHWM``): unlike ``ru_maxrss``, it owes
    nothing to the parent's size at the fork."""
    return _hwm_mib() or _peak_mib()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Wall time, throughput and peak memory of one run."""
    events, run = _prepare(args)
    ready_mib = _own_peak_mib()
    start = time.perf_counter()
    outcome = run()
    seconds = time.perf_counter() - start
    return {
        **outcome,
        "events": events,
        "seconds": seconds,
        "events_per_second": events / seconds if seconds and outcome["finished"] else None,
        "peak_mib": _own_peak_mib(),
        "ru_maxrss_mib": _peak_mib(),
        "ready_mib": ready_mib,
    }


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, measure, print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("file", type=Path, help="JSONL file of Segment messages")
    parser.add_argument("cache_dir", type=Path, help="where the parsed input is cached")
    parser.add_argument("--campaigns", type=Path, help="followup: the campaign folder")
    parser.add_argument("--rules", type=int, default=1, help="rule-engine: trigger rules")
    parser.add_argument("--limit", type=int, help="only the first N events of the file")
    parser.add_argument(
        "--one-rule",
        action="store_true",
        help="baseline, durable-rules: the abandoned cart cut to its first rule (followup: the"
        " one-rule campaign set)",
    )
    parser.add_argument("--budget", type=float, help="followup: stop after this many seconds")
    parser.add_argument(
        "--workers", type=int, help="followup: processes (default: as followup simulate)"
    )
    args = parser.parse_args(argv)
    sys.stdout.write(orjson.dumps(measure(args)).decode() + "\n")


if __name__ == "__main__":
    main()
