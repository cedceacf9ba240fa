"""Where followup's ``simulate`` time goes, on the synthetic abandoned-cart workload.

    python -m benchmarks.campaigns.profile [--events 100000] [--campaigns 1] [--listening]
        [--top 25] [--pyinstrument] [--out FILE]

Generates the workload (as ``run`` does, in ``benchmarks/.work/``) and its campaign set (the
abandoned cart plus N-1 idle campaigns, or N listening copies), then runs ``simulate`` once under cProfile and prints the
top functions by own time and by cumulative time; ``--pyinstrument`` prints pyinstrument's call
tree instead (sampling, so closer to real proportions). cProfile slows Python calls more than C
calls: read the shares, not the seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
from pathlib import Path

from benchmarks.campaigns.campaign_files import write_campaigns
from benchmarks.campaigns.followup_system import plan_counts
from benchmarks.campaigns.records import build_caches, load_events
from benchmarks.campaigns.run import CACHE, SETS, WORK
from benchmarks.campaigns.workload import ensure_workload
from benchmarks.ingest.synthetic import SEED, SyntheticSpec


def main(argv: list[str] | None = None) -> None:
    """Profile one ``simulate`` and print where the time went."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--customers", type=int, help="default: events / 10")
    parser.add_argument("--campaigns", type=int, default=1, help="1 abandoned cart + N-1 idle")
    parser.add_argument("--listening", action="store_true", help="N abandoned-cart copies")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--pyinstrument", action="store_true")
    parser.add_argument("--out", type=Path, help="also save the raw cProfile data here")
    args = parser.parse_args(argv)
    spec = SyntheticSpec(args.events, args.customers or args.events // 10, SEED)
    path = ensure_workload(spec, WORK).path
    build_caches(path, CACHE)
    events = load_events(path, CACHE)
    kind = "listening" if args.listening else "idle"
    folder = write_campaigns(SETS / f"profile-{kind}-{args.campaigns}", kind, args.campaigns)

    from engine.campaigns.loader import load_campaigns
    from engine.config import ProjectConfig
    from engine.journeys.simulate import simulate

    models = [item.campaign for item in load_campaigns([folder]).campaigns.values()]
    config = ProjectConfig()
    if args.pyinstrument:
        from pyinstrument import Profiler

        sampler = Profiler(interval=0.001)
        sampler.start()
        plan = simulate(models, events, config)
        sampler.stop()
        print(sampler.output_text(unicode=False, color=False, show_all=False))
    else:
        profiler = cProfile.Profile()
        plan = profiler.runcall(simulate, models, events, config)
        if args.out is not None:
            profiler.dump_stats(args.out)
        for order in ("tottime", "cumulative"):
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(args.top)
            print(f"\n--- top {args.top} by {order} ---")
            print(text.getvalue().split("\n\n", 2)[-1].rstrip())
    print(f"\n{path.name}, {len(models)} campaigns: {dict(plan_counts(plan))}")


if __name__ == "__main__":
    main()
