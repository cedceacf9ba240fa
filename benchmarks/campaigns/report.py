"""The figures of a run: the table, the side-by-side ratios, the aims, the sanity check."""

from __future__ import annotations

import os
import platform
from typing import Any

from benchmarks.ingest.report import _cpu_model, _git, code_version

SENDS = ("entered", "email", "call", "ads", "exit_restarted", "exit_merged")
AIMS = (
    ("simulate at least 4x faster than durable-rules", "followup_over_durable", ">=", 4.0),
    ("simulate within 10x of the bare baseline", "baseline_over_followup", "<=", 10.0),
    ("100 non-listening campaigns under 10% over 1", "idle_100_overhead", "<", 0.10),
    ("simulate ahead of durable-rules on the one-rule cart", "followup_over_durable_one_rule",
     ">=", 1.0),
)  # fmt: skip


def machine() -> dict[str, Any]:
    """CPU, memory, Python, and the engine's commit (with a digest of uncommitted changes)."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(pages / 2**30, 1),
        "python": platform.python_version(),
        "code": code_version(),
        "git_dirty": _git("status", "--porcelain", "--", "engine").splitlines(),
    }


def _find(results: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    return next((r for r in results if r["key"] == key and r.get("finished")), None)


def _rate(results: list[dict[str, Any]], key: str) -> float | None:
    found = _find(results, key)
    return found["events_per_second"] if found else None


def ratios(results: list[dict[str, Any]]) -> dict[str, float | None]:
    """The ratios the aims are about, from measurements of the same run."""
    followup = _rate(results, "followup-1")
    baseline, durable = _rate(results, "baseline"), _rate(results, "durable-rules")
    one = _find(results, "followup-1")

    def overhead(key: str) -> float | None:
        other = _find(results, key)
        if one is None or other is None:
            return None
        return float(other["seconds"] / one["seconds"] - 1)

    re_one, re_hundred = _rate(results, "rule-engine-1"), _rate(results, "rule-engine-100")
    one_rule = _rate(results, "followup-one-rule"), _rate(results, "durable-rules-one-rule")
    return {
        "followup_over_durable": followup / durable if followup and durable else None,
        "followup_over_durable_one_rule": (
            one_rule[0] / one_rule[1] if one_rule[0] and one_rule[1] else None
        ),
        "baseline_over_followup": baseline / followup if followup and baseline else None,
        "idle_10_overhead": overhead("followup-10"),
        "idle_100_overhead": overhead("followup-100"),
        "listening_10_overhead": overhead("followup-10-listening"),
        "rule_engine_1_over_100": re_one / re_hundred if re_one and re_hundred else None,
    }


def aims(values: dict[str, float | None]) -> list[dict[str, Any]]:
    """Each aim with its measured value and whether it is met (``None``: not measured)."""
    checks = {">=": float.__ge__, "<=": float.__le__, "<": float.__lt__}
    out = []
    for text, key, op, target in AIMS:
        value = values.get(key)
        met = None if value is None else bool(checks[op](float(value), target))
        out.append({"aim": text, "value": value, "target": f"{op} {target:g}", "met": met})
    return out


def sanity(results: list[dict[str, Any]]) -> list[tuple[str, int | None, int | None]]:
    """followup's plan (1 campaign) next to the baseline's counters: (what, followup, baseline)."""
    followup, baseline = _find(results, "followup-1"), _find(results, "baseline")
    if followup is None or baseline is None:
        return []
    counts_f, counts_b = followup["counts"], baseline["counts"]
    return [(name, counts_f.get(name, 0), counts_b.get(name, 0)) for name in SENDS]


def _sends(result: dict[str, Any]) -> str:
    counts = result.get("counts") or {}
    if not counts:
        return ""
    return f"{counts.get('email', 0):,} / {counts.get('call', 0):,} / {counts.get('ads', 0):,}"


def markdown_table(results: list[dict[str, Any]]) -> str:
    """One row per measurement."""
    header = "| workload | system | campaigns | events | seconds | events/s | peak MiB | input MiB "
    lines = [
        header + "| email / call / ads | plan lines |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        if r.get("finished"):
            seconds, rate = f"{r['seconds']:.1f}", f"{r['events_per_second']:,.0f}"
        else:
            seconds, rate = f"> {r.get('seconds', 0):.0f}", "did not finish"
        plan = f"{r['plan_lines']:,}" if "plan_lines" in r else ""
        lines.append(
            f"| {r['workload']} | {r['system']} | {r['label']} | {r['events']:,} | {seconds} "
            f"| {rate} | {r['peak_mib']:.0f} | {r['ready_mib']:.0f} | {_sends(r)} | {plan} |"
        )
    return "\n".join(lines)


def unfinished(results: list[dict[str, Any]]) -> list[str]:
    """What each run that ran out of time had done by then."""
    notes = []
    for r in results:
        progress = r.get("progress")
        if r.get("finished") or not progress:
            continue
        if "events_applied" not in progress:
            notes.append(f"{r['workload']} / {r['label']}: stopped while {progress['phase']}")
            continue
        notes.append(
            f"{r['workload']} / {r['label']}: stopped after {r['seconds']:.0f} s at event "
            f"{progress['events_applied']:,} of {progress['events_total']:,} (event time "
            f"{progress['event_time'][:10]}; the events run from "
            f"{progress['first_event_time'][:10]} to {progress['last_event_time'][:10]}), "
            f"{progress['plan_lines']:,} plan lines so far"
        )
    return notes


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}%"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def summary_text(results: list[dict[str, Any]]) -> str:
    """The ratios, the aims and the sanity check, as markdown."""
    values = ratios(results)
    lines = [
        f"- followup / durable-rules (events/s): {_times(values['followup_over_durable'])}",
        f"- bare baseline / followup (events/s): {_times(values['baseline_over_followup'])}",
        f"- 10 non-listening campaigns over 1: {_percent(values['idle_10_overhead'])}",
        f"- 100 non-listening campaigns over 1: {_percent(values['idle_100_overhead'])}",
        f"- 10 listening campaigns over 1: {_percent(values['listening_10_overhead'])}",
        (
            f"- rule-engine, 1 rule / 100 rules (events/s): "
            f"{_times(values['rule_engine_1_over_100'])}"
        ),
        "",
        "| aim | measured | target | met |",
        "|---|--:|--:|---|",
    ]
    for aim in aims(values):
        shown = aim["value"]
        measured = "n/a" if shown is None else f"{shown:.3g}"
        met = {None: "not measured", True: "yes", False: "**no**"}[aim["met"]]
        lines.append(f"| {aim['aim']} | {measured} | {aim['target']} | {met} |")
    notes = unfinished(results)
    if notes:
        lines += ["", *(f"- did not finish: {note}" for note in notes)]
    checks = sanity(results)
    if checks:
        lines += ["", "| plan (1 campaign) | followup | baseline |", "|---|--:|--:|"]
        lines += [f"| {name} | {f:,} | {b:,} |" for name, f, b in checks]
    return "\n".join(lines)
