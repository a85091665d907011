"""`python -m benchmarks [--quick] [--only NAME ...]`: the side-by-side benchmarks, one run, one report.

Each benchmark compares a part of the Dagster project with the tool a data engineer would otherwise
use, on the same data in the same run, and fails loudly if the two produced different results.
Results go to benchmarks/results/<UTC date>.json and .md (`<date>-quick...` for a quick run, with the
names for a partial one); a full run of every benchmark also rewrites the README's "Benchmarks" block.
"""

from __future__ import annotations

import argparse

from benchmarks import batch, emulator, first_minutes, history, soak, streaming
from benchmarks.common import discard_workspaces, progress
from benchmarks.report import write_results
from pinterest_dagster.settings import REPO_ROOT

# Sizes: full is what the README reports; quick checks the whole harness in a few minutes.
PARAMETERS = {
    "full": {"emulator": {"posts": 200_000, "repeats": 3}, "batch": {"posts": 1_000_000},
             "streaming": {"posts": 333_334, "max_records_per_run": 1_000_000},
             "latency": {"events_per_s": [1_000, 10_000], "seconds": 60, "max_records_per_run": 1_000_000},
             "history": {"history_posts": 3_000_000, "events_per_s": 1_000, "seconds": 60, "max_records_per_run": 1_000_000},
             "first_minutes": {"events_per_s": 1_000, "seconds": 60, "max_records_per_run": 1_000_000},
             "soak": {"events_per_s": 11_600, "minutes": 20, "every_minutes": 5}},
    "quick": {"emulator": {"posts": 10_000, "repeats": 1}, "batch": {"posts": 20_000},
              "streaming": {"posts": 10_000, "max_records_per_run": 1_000_000},
              "latency": {"events_per_s": [1_000], "seconds": 15, "max_records_per_run": 1_000_000},
              "history": {"history_posts": 10_000, "events_per_s": 1_000, "seconds": 15, "max_records_per_run": 1_000_000,
                          "windows_per_side": 1},
              "first_minutes": {"events_per_s": 1_000, "seconds": 15, "max_records_per_run": 1_000_000},
              "soak": {"events_per_s": 3_000, "minutes": 2, "every_minutes": 1}},
}
BENCHMARKS = {"emulator": emulator.run, "batch": batch.run, "streaming": streaming.compare_throughput,
              "latency": streaming.compare_latency, "history": history.compare_history,
              # Last: it restarts the local stack (make down, make up) to measure a cold Spark Connect server.
              "first_minutes": first_minutes.compare_first_minutes, "soak": soak.compare_soak}
# Run only when named (--only soak, or --soak): 20 minutes of sustained load.
OPT_IN = ("soak",)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes, for checking the harness")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--soak", action="store_true", help="also run the soak benchmark (20 min; opt-in)")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    names = args.only or [name for name in BENCHMARKS if name not in OPT_IN or args.soak]
    parameters = {name: PARAMETERS[mode][name] for name in names}
    comparisons = []
    for name in names:
        progress(f"{name}: starting ({mode}: {parameters[name]})")
        for c in BENCHMARKS[name](**parameters[name]):
            met = {True: "met", False: "NOT MET", None: "reported only"}[c.met]
            progress(f"{c.name}: ratio {c.ratio:.2f}, target {c.target_shown}: {met}")
            comparisons.append(c)
        discard_workspaces()
    # Only a full run of every benchmark speaks for the project in its README.
    readme = REPO_ROOT / "README.md" if mode == "full" and not args.only else None
    label = "".join(f"-{part}" for part in ([] if mode == "full" else [mode]) + (args.only or []))
    path = write_results(comparisons, mode, parameters, readme, label)
    progress(f"results in {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
