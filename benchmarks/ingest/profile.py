"""Where followup's ingest time goes: the measured run under cProfile.

    python -m benchmarks.ingest.profile [FILE] [--backend sqlite|postgresql] [--top 15]

FILE defaults to the quick synthetic workload (generated if missing). Prints the top functions by
own time and by cumulative time. cProfile slows Python code more than driver and database time,
so read the shares, not the seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
from pathlib import Path

from benchmarks.ingest.databases import BACKENDS, scratch_database
from benchmarks.ingest.measure import engine_batch_size, prepare_followup
from benchmarks.ingest.run import WORK
from benchmarks.ingest.synthetic import SyntheticSpec, ensure_synthetic


def main(argv: list[str] | None = None) -> None:
    """Profile one followup ingest and print the top functions."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path, nargs="?")
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path, help="also save the raw profile here")
    args = parser.parse_args(argv)
    path = args.file or ensure_synthetic(SyntheticSpec(100_000, 10_000), WORK).path
    with scratch_database(args.backend) as url:
        run = prepare_followup(url, path, engine_batch_size())
        profiler = cProfile.Profile()
        outcome = profiler.runcall(run)
    print(f"{path} into {args.backend}: {outcome}")
    if args.out is not None:
        profiler.dump_stats(args.out)
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(args.top)
        print(f"\n--- top {args.top} by {order} ---")
        print(text.getvalue().split("\n\n", 2)[-1].rstrip())


if __name__ == "__main__":
    main()
