"""One measurement, run in its own process so its peak memory is its own:
``python -m benchmarks.ingest.measure SYSTEM URL FILE`` prints one JSON object.

Imports and opening the database happen before the clock starts; the clock covers reading the
file to the last commit.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from itertools import takewhile
from pathlib import Path
from typing import Any

import orjson

SYSTEMS = ("followup", "floor", "row-floor")


def _peak_mib() -> float:
    """This process's peak resident set (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _hwm_mib() -> float | None:
    """The peak RSS of this program image alone (``VmHWM``), which, unlike ``ru_maxrss``, owes
    nothing to the parent; a cross-check."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def engine_batch_size() -> int:
    """The batch size ``Followup`` ingests with when nobody says otherwise."""
    from engine.api import Followup
    from engine.config import Project, ProjectConfig

    followup = Followup(Project(ProjectConfig(database_url="sqlite:///:memory:"), Path.cwd()))
    followup.close()
    return followup.ingestor.batch_size


class Progress:
    """When each batch committed (``timeline``: seconds since :meth:`start`, events), and
    whether to read on: a run given ``seconds`` stops reading once they have passed (the batch
    under way still completes)."""

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = seconds
        self.started = 0.0
        self.timeline: list[tuple[float, int]] = []

    def start(self) -> None:
        """Start the clock."""
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.started

    def committed(self, events: int) -> None:
        """A batch of ``events`` has committed."""
        self.timeline.append((self.elapsed(), events))

    def more(self) -> bool:
        """Whether to read more input."""
        return self.seconds is None or self.elapsed() < self.seconds


def prepare_followup(
    url: str, path: Path, batch_size: int, progress: Progress | None = None
) -> Callable[[], dict[str, Any]]:
    """The full path of ``followup ingest FILE``: the facade's ingestor over ``read_jsonl``."""
    from engine.api import Followup
    from engine.config import Project, ProjectConfig
    from engine.ingest.jsonl import read_jsonl

    followup = Followup(Project(ProjectConfig(database_url=url), root=path.parent))
    followup.ingestor.batch_size = batch_size
    progress = progress or Progress()

    def run() -> dict[str, Any]:
        records = takewhile(
            lambda _: progress.more(), read_jsonl(path, phone_region=followup.phone_region)
        )
        summary = followup.ingestor.ingest(
            records, lambda batch: progress.committed(batch.accepted)
        )
        followup.close()
        return {
            "events": summary.accepted,
            "duplicates": summary.duplicates,
            "rejected": summary.rejected_total,
            "customers_created": summary.customers_created,
            "merges": summary.merges,
        }

    return run


def prepare_floor(
    url: str, path: Path, batch_size: int, progress: Progress | None = None
) -> Callable[[], dict[str, Any]]:
    """orjson parsing and the backend's bulk insert of the same rows, nothing else."""
    from benchmarks.ingest import floor

    progress = progress or Progress()

    def run() -> dict[str, Any]:
        return {"events": floor.load(url, path, batch_size, progress.committed, progress.more)}

    return run


def prepare_row_floor(
    url: str, path: Path, batch_size: int, progress: Progress | None = None
) -> Callable[[], dict[str, Any]]:
    """The same reads and writes as followup's ingest, by plain sqlite3 / psycopg."""
    from benchmarks.ingest import row_floor

    progress = progress or Progress()

    def run() -> dict[str, Any]:
        return {"events": row_floor.load(url, path, batch_size, progress.committed, progress.more)}

    return run


PREPARE = {"followup": prepare_followup, "floor": prepare_floor, "row-floor": prepare_row_floor}


def measure(
    system: str, url: str, path: Path, batch_size: int, seconds: float | None = None
) -> dict[str, Any]:
    """Wall time, throughput and peak memory of one system loading ``path`` into ``url`` (or
    as much of it as ``seconds`` allow), and its timeline: ``[seconds since the start, events]``
    as each batch committed."""
    prepare = PREPARE[system]
    progress = Progress(seconds)
    run = prepare(url, path, batch_size, progress)
    ready_mib = _peak_mib()
    progress.start()
    outcome = run()
    elapsed = progress.elapsed()
    return {
        **outcome,
        "timeline": progress.timeline,
        "seconds": elapsed,
        "events_per_second": outcome["events"] / elapsed if elapsed else 0.0,
        "peak_mib": _peak_mib(),
        "vm_hwm_mib": _hwm_mib(),
        "ready_mib": ready_mib,
    }


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, measure, print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("url", help="SQLAlchemy URL of a database with followup's schema")
    parser.add_argument("file", type=Path, help="JSONL file of Segment messages")
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--seconds", type=float, help="stop reading the file after this long")
    args = parser.parse_args(argv)
    result = measure(args.system, args.url, args.file, args.batch_size, args.seconds)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
