"""Segment looks recalled against every look made in full, side by side in one process.

``python -m benchmarks.campaigns.segment_looks EVENTS.jsonl [--campaigns DIR] [--rounds N]``
parses the file once, then simulates it (one process) with
:data:`engine.journeys.segments.REMEMBER_LOOKS` off and on in turn, ``--rounds`` times, and
prints each run's seconds and whether the plans are the same (default: the example campaigns,
whose win-back is a segment campaign; the workload of :mod:`benchmarks.campaigns.workload`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from engine.campaigns.loader import load_campaigns
from engine.config import ProjectConfig
from engine.events import Event
from engine.gc_pauses import no_full_collections
from engine.ingest.jsonl import read_jsonl
from engine.ingest.pipeline import Accepted
from engine.journeys import segments
from engine.journeys.plan import plan_text
from engine.journeys.simulate import simulation

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", type=Path)
    parser.add_argument("--campaigns", type=Path, default=ROOT / "campaigns")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    events: list[Event] = []
    with no_full_collections():
        for record in read_jsonl(args.events):
            if isinstance(record, Accepted):
                events.extend(record.events)
    campaigns = list(load_campaigns([args.campaigns]).require().values())
    plans: dict[bool, str] = {}
    for round_number in range(1, args.rounds + 1):
        for remember in (False, True):
            segments.REMEMBER_LOOKS = remember
            start = time.perf_counter()
            simulated = simulation(
                campaigns, events, ProjectConfig(), None, ROOT / "templates", workers=1
            )
            seconds = time.perf_counter() - start
            plans.setdefault(remember, plan_text(simulated.plan))
            label = "recalled" if remember else "in full "
            lines = len(simulated.plan)
            print(f"round {round_number}, looks {label}: {seconds:.2f} s, {lines:,} plan lines")
    print("the same plan:", plans[False] == plans[True])


if __name__ == "__main__":
    main()
