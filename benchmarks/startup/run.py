"""Start-up time of the ``followup`` command: two versions of the code side by side, one run.

    python -m benchmarks.startup.run [--before main] [--after REF] [--runs 5]

``--before`` is a git ref, exported with ``git archive`` into a scratch folder; the other side
is this checkout, or ``--after`` another ref. Both run through the venv's ``followup`` console
script with ``PYTHONPATH`` naming the tree, so the interpreter, packages and machine are the
same. The project is a scratch folder with the example campaigns and templates and a database
made by one first ``followup tick``, so the timed ``tick`` is an idle pass. Runs alternate
between the two versions; the table gives per command the median and the fastest of ``--runs``
wall times and the median CPU time (user + system, steadier on a busy machine), beside the
floor: the bare interpreter and ``import sqlalchemy``, which any command touching the database
pays. Output that differs between the versions is named at the end.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[2]
FOLLOWUP = str(Path(sys.executable).parent / "followup")
WORKLOADS: dict[str, list[str]] = {
    "followup tick (idle)": [FOLLOWUP, "tick"],
    "followup --help": [FOLLOWUP, "--help"],
    "followup validate": [FOLLOWUP, "validate"],
}
FLOORS: dict[str, list[str]] = {
    'python -c "pass"': [sys.executable, "-c", "pass"],
    'python -c "import sqlalchemy"': [sys.executable, "-c", "import sqlalchemy"],
}


class Run(NamedTuple):
    """One run's wall and CPU seconds."""

    wall: float
    cpu: float


def export(ref: str, into: Path) -> Path:
    """The engine and integrations packages as of ``ref``, unpacked under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref, "engine", "integrations"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def environment(tree: Path) -> dict[str, str]:
    """The environment that makes ``followup`` import ``tree``; no database from outside."""
    env = {k: v for k, v in os.environ.items() if k != "FOLLOWUP_DATABASE_URL"}
    env["PYTHONPATH"] = str(tree)
    env["COLUMNS"] = "100"
    return env


def check_tree(tree: Path) -> None:
    """Fail unless the engine imported with ``tree`` on the path is the one in ``tree``."""
    where = subprocess.run(
        [sys.executable, "-c", "import engine; print(engine.__file__)"],
        cwd=tree,
        env=environment(tree),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"PYTHONPATH={tree} imports the engine from {where}")


def timed(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> tuple[Run, str]:
    """Wall and CPU seconds of one run of ``command``, and its exit code and output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Run(wall, cpu), f"exit {done.returncode}\n{done.stdout}{done.stderr}"


def comparable(output: str) -> str:
    """The output without the time stamp a tick starts its line with."""
    return "\n".join(line.split(": ", 1)[-1] for line in output.splitlines())


def project(into: Path) -> Path:
    """A project folder with the example campaigns and templates and its database made."""
    for folder in ("campaigns", "templates"):
        shutil.copytree(REPO / folder, into / folder)
    first = subprocess.run(
        [FOLLOWUP, "tick"], cwd=into, env=environment(REPO), capture_output=True, check=False
    )
    if first.returncode != 0:
        raise SystemExit(f"the first followup tick failed: {first.stderr.decode()}")
    return into


def measure(
    trees: Mapping[str, Path], cwd: Path, runs: int
) -> tuple[dict[tuple[str, str], list[Run]], list[str]]:
    """Times per (workload, version), the versions alternating; and which outputs differ."""
    times: dict[tuple[str, str], list[Run]] = {}
    outputs: dict[tuple[str, str], str] = {}
    for _ in range(runs):
        for name, command in {**WORKLOADS, **FLOORS}.items():
            for version, tree in trees.items():
                run, output = timed(command, cwd, environment(tree))
                times.setdefault((name, version), []).append(run)
                outputs[name, version] = comparable(output)
    versions = list(trees)
    differ = [
        name for name in WORKLOADS if outputs[name, versions[0]] != outputs[name, versions[1]]
    ]
    return times, differ


def table(times: Mapping[tuple[str, str], list[Run]], versions: Sequence[str]) -> str:
    """A markdown table per command and version: the median wall seconds (the fastest run's),
    and the median CPU seconds (user + system), which another load on the machine disturbs less."""
    head = "| command | " + " | ".join(f"{v}: wall (min) | CPU" for v in versions) + " |"
    lines = [head, "|---" * (2 * len(versions) + 1) + "|"]
    for name in {**WORKLOADS, **FLOORS}:
        cells = []
        for version in versions:
            found = times[name, version]
            wall = statistics.median(r.wall for r in found)
            cells.append(f"{wall:.3f} ({min(r.wall for r in found):.3f})")
            cells.append(f"{statistics.median(r.cpu for r in found):.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="git ref to compare with (main)")
    parser.add_argument("--after", help="git ref to measure (default: this checkout)")
    parser.add_argument("--runs", type=int, default=5, help="runs per command and version (5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="followup-startup-") as scratch:
        root = Path(scratch)
        after = export(args.after, root / "after") if args.after else REPO
        trees = {
            f"before ({args.before})": export(args.before, root / "before"),
            f"after ({args.after or 'checkout'})": after,
        }
        for tree in trees.values():
            check_tree(tree)
        folder = project(root / "project")
        load = os.getloadavg()[0]
        times, differ = measure(trees, folder, args.runs)
    print(
        f"{args.runs} runs each, alternating; {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
        f"load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    print(table(times, list(trees)))
    print("outputs differ: " + (", ".join(differ) if differ else "none"))


if __name__ == "__main__":
    main()
