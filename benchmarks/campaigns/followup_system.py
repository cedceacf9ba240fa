"""followup's side of a measurement: ``simulate`` exactly as ``followup simulate`` calls it.

Campaigns come from ``load_campaigns([folder])``, events are parsed beforehand (as the CLI does
before it calls ``simulate``), the config is the embedded default ``ProjectConfig()``. The clock
covers the ``simulate(...)`` call alone. The plan is counted in the peers' terms.

A run may have a time budget: when it runs out, the run stops and reports how far it got (the
event ``simulate`` was applying, read from its frame), instead of a figure.
"""

from __future__ import annotations

import signal
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.events import Event
    from engine.journeys.plan import PlanLine


class BudgetSpent(BaseException):
    """The run's time budget ran out; ``progress`` says how far ``simulate`` got. A
    ``BaseException``, so that the engine's ``except Exception`` guards let it through."""

    def __init__(self, progress: dict[str, Any]) -> None:
        super().__init__("time budget spent")
        self.progress = progress


def plan_counts(plan: list[PlanLine]) -> Counter[str]:
    """The plan in the peers' terms: entries, emails, calls, ads, exits by reason."""
    counts: Counter[str] = Counter()
    for line in plan:
        action = line.action.value
        if action == "enter":
            counts["entered"] += 1
        elif action == "exit":
            counts[f"exit_{line.reason}"] += 1
        elif action == "send":
            counts[str(line.channel)] += 1
        elif action == "audience_add":
            counts["ads"] += 1
        else:
            counts[action] += 1
        if line.status == "skipped":
            counts[f"skipped_{line.reason}"] += 1
    return counts


def _progress(frame: FrameType | None, simulate_code: object) -> dict[str, Any]:
    """Where ``simulate`` is, from the frame the alarm interrupted (the driver's, deciding
    the events; in this process's part of them when split)."""
    while frame is not None and frame.f_code is not simulate_code:
        frame = frame.f_back
    if frame is None:
        return {"phase": "outside simulate"}
    local = frame.f_locals
    ordered, event, engine = local.get("events"), local.get("event"), local.get("engine")
    if ordered is None or event is None:
        return {"phase": "preparing"}
    index = ordered.index(event)
    return {
        "phase": "events" if index < len(ordered) - 1 else "clock after the last event",
        "events_applied": index,
        "events_total": len(ordered),
        "event_time": event.timestamp.isoformat(),
        "first_event_time": ordered[0].timestamp.isoformat(),
        "last_event_time": ordered[-1].timestamp.isoformat(),
        "plan_lines": len(engine.plan) if engine is not None else None,
    }


def prepare(
    events: list[Event], campaigns: Path, budget: float | None, workers: int | None = None
) -> Callable[[], dict[str, Any]]:
    """The measured call, ready to run: everything but ``simulate`` is done here. ``workers``:
    the processes ``simulate`` splits the customers between (default: as ``followup simulate``,
    one per CPU; the peak memory measured is this process's alone)."""
    from engine.campaigns.loader import load_campaigns
    from engine.config import ProjectConfig
    from engine.drive.driver import Driver
    from engine.journeys.simulate import simulate

    loaded = load_campaigns([campaigns])
    if loaded.problems:
        raise SystemExit("\n".join(str(problem) for problem in loaded.problems))
    models = [item.campaign for item in loaded.campaigns.values()]
    config = ProjectConfig()

    def on_alarm(_signum: int, frame: FrameType | None) -> None:
        raise BudgetSpent(_progress(frame, Driver.decide.__code__))

    def run() -> dict[str, Any]:
        if budget:
            signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, budget)
        try:
            plan = simulate(models, events, config, None, workers=workers)
        except BudgetSpent as spent:
            print(f"budget of {budget:.0f} s spent: {spent.progress}", file=sys.stderr)
            return {"events": len(events), "finished": False, "progress": spent.progress}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        return {
            "events": len(events),
            "finished": True,
            "campaigns": len(models),
            "workers": workers or "as followup simulate",
            "plan_lines": len(plan),
            "counts": dict(sorted(plan_counts(plan).items())),
        }

    return run
