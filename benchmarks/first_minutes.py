"""The first minutes after a fresh `make up`: are the first micro-batches as fast as the later ones?

    SPARK_REMOTE=sc://127.0.0.1:15002 .venv/bin/python -m benchmarks.first_minutes --rate 333 --seconds 60

Stops the local services (`make down`) and starts them again (`make up`), as a user does on a fresh
machine or after a reboot: the Spark Connect server's JVM starts cold. Then, in a fresh workspace, the
Dagster daemon starts; once it has evaluated the streaming sensor, the emulator posts at `--rate` posts/s
(3 events each) for 2 x `--seconds`. Reported: produce -> cleaned/pin p50 of the pin events produced in
the first `--seconds` against those produced in the next `--seconds`, and the ratio.

The daemon's runs use the Connect server (SPARK_REMOTE, as `make dev` and `make demo` do); this process
reads the lake with an in-process session of its own so that it does not warm the server itself.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from benchmarks.common import Comparison, comparisons_from_process, percentiles, progress, report_from_process
from benchmarks.history import classic_session, workspace
from benchmarks.streaming import daemon_latencies
from pinterest_dagster.settings import REPO_ROOT

TARGET = 1.2  # the first minute's p50 at most 1.2x the next minute's


def restart_stack() -> float:
    """`make down` then `make up`: seconds `make up` took (the warm-up it runs included)."""
    subprocess.run(["make", "-s", "down"], cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
    started = time.monotonic()
    subprocess.run(["make", "-s", "up"], cwd=REPO_ROOT, check=True, stdout=sys.stderr)  # stdout: --json's line
    return time.monotonic() - started


def split_p50(by_produce_time: list[tuple[float, float]], seconds: int) -> tuple[dict, dict]:
    """Percentiles of the events produced in [0, seconds) and in [seconds, 2 x seconds) after posting began."""
    first = [latency for t, latency in by_produce_time if t < seconds]
    later = [latency for t, latency in by_produce_time if seconds <= t < 2 * seconds]
    return percentiles(first), percentiles(later)


def run(rate: float, seconds: int, max_records_per_run: int, timeout_s: float) -> list[Comparison]:
    spark_remote = os.environ.pop("SPARK_REMOTE", None)  # for the daemon; this process stays classic
    if not spark_remote:
        raise SystemExit("benchmarks.first_minutes measures the Spark Connect server of make up: set SPARK_REMOTE")
    progress("first minutes: make down, then make up (the Connect server starts cold)")
    up_s = restart_stack()
    progress(f"first minutes: make up took {up_s:.1f} s")
    settings, env = workspace(max_records_per_run, spark_remote)
    spark = classic_session(settings)
    progress(f"first minutes: daemon at {rate * 3:,.0f} events/s for 2 x {seconds} s")
    window = daemon_latencies(spark, settings, env, rate, 2 * seconds, timeout_s, sensor_first=True)
    first, later = split_p50(window.by_produce_time, seconds)
    progress(f"first minutes: p50 {first['p50']:.1f} s in the first {seconds} s, {later['p50']:.1f} s in the next")
    figures = {**{f"first_{k}_s": v for k, v in first.items()}, **{f"next_{k}_s": v for k, v in later.items()},
               "make_up_s": up_s}
    return [Comparison(
        "first_minutes", f"latency produce -> cleaned/pin right after a fresh make up: first {seconds} s vs the next "
        f"{seconds} s (p50, s)", figures, later["p50"] / first["p50"], 1 / TARGET,
        f"first {seconds} s p50 at most {TARGET}× the next {seconds} s's", "s",
        {"events_per_s": round(rate * 3), "seconds": seconds, "max_records_per_run": max_records_per_run},
        "every pin event posted became visible in cleaned/pin")]


def compare_first_minutes(events_per_s: int, seconds: int, max_records_per_run: int,
                          timeout_s: float = 1800) -> list[Comparison]:
    """In a process of its own: it reads the lake with a classic session."""
    return comparisons_from_process(
        "benchmarks.first_minutes", "--rate", str(events_per_s / 3), "--seconds", str(seconds),
        "--max-records-per-run", str(max_records_per_run), "--timeout", str(timeout_s))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.first_minutes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=333, help="posts per second (3 events each)")
    parser.add_argument("--seconds", type=int, default=60, help="length of each of the two windows compared")
    parser.add_argument("--max-records-per-run", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", action="store_true", help="print the comparison as one JSON line (python -m benchmarks)")
    parser.add_argument("--discard", action="store_true", help="delete the topics and folders after success")
    args = parser.parse_args()
    report_from_process(run(args.rate, args.seconds, args.max_records_per_run, args.timeout), args.json, args.discard)

if __name__ == "__main__":
    main()
