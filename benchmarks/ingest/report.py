"""The machine a run happened on, and its results as a markdown table."""

from __future__ import annotations

import hashlib
import os
import platform
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.ingest.databases import ADMIN_DATABASE, conninfo


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    return done.stdout.rstrip()


def code_version() -> str:
    """The commit of the engine measured, with a digest of uncommitted changes under ``engine/``
    (``af374f6+d41d8c`` means dirty): the tree can change between measurements."""
    head = _git("rev-parse", "--short", "HEAD")
    changes = _git("diff", "HEAD", "--", "engine") + _git(
        "ls-files", "--others", "--exclude-standard", "--", "engine"
    )
    if not changes:
        return head
    return f"{head}+{hashlib.sha1(changes.encode()).hexdigest()[:6]}"


def machine() -> dict[str, Any]:
    """CPU, memory, and the versions of Python, SQLite, PostgreSQL and the code measured."""
    with psycopg.connect(conninfo(ADMIN_DATABASE)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(pages / 2**30, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": row[0] if row else "unknown",
        "psycopg": psycopg.__version__,
        "git_head": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": _git("status", "--porcelain", "--", "engine").splitlines(),
    }


def ratios(results: list[dict[str, Any]], floor: str = "floor") -> dict[tuple[str, str], float]:
    """followup seconds / ``floor`` seconds (``floor`` or ``row-floor``), by (workload,
    backend)."""
    seconds = {(r["workload"], r["backend"], r["system"]): r["seconds"] for r in results}
    return {
        (workload, backend): value / seconds[(workload, backend, floor)]
        for (workload, backend, system), value in seconds.items()
        if system == "followup" and (workload, backend, floor) in seconds
    }


def markdown_table(results: list[dict[str, Any]]) -> str:
    """One row per measurement; the ratios sit on the followup row."""
    by_floor = [ratios(results, floor) for floor in ("floor", "row-floor")]
    header = ("workload", "backend", "system", "events", "seconds", "events/s", "peak MiB")
    lines = [
        f"| {' | '.join(header)} | followup/floor | followup/row floor |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        key = (r["workload"], r["backend"])
        shown = [
            f"{ratio[key]:.1f}×" if r["system"] == "followup" and key in ratio else ""
            for ratio in by_floor
        ]
        lines.append(
            f"| {r['workload']} | {r['backend']} | {r['system']} | {r['events']:,} "
            f"| {r['seconds']:.1f} | {r['events_per_second']:,.0f} | {r['peak_mib']:.0f} "
            f"| {' | '.join(shown)} |"
        )
    return "\n".join(lines)
