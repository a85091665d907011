"""What micro-batches cost in Dagster's own storage, before and after housekeeping.

    SPARK_REMOTE=sc://127.0.0.1:15002 .venv/bin/python -m benchmarks.dagster_storage --runs 100

The daemon streams a trickle of posts (`--rate` posts/s) into a fresh workspace until `--runs`
streaming_job runs have succeeded; then, with the daemon stopped, the bytes that the instance's SQLite
databases hold (runs, event logs, schedules and ticks) are measured, `housekeeping_job` deletes every
successful micro-batch run (`keep_successful_streaming_runs_hours: 0`), and they are measured again.
Bytes are the databases' live pages (page count less free pages, times page size): SQLite keeps a
deleted row's pages for reuse instead of shrinking its file, so file sizes would hide the deletion.
Reported per 1,000 micro-batches.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import time
from pathlib import Path

import dagster as dg

from benchmarks.common import discard_workspaces, fresh_workspace, progress
from benchmarks.streaming import start_daemon, wait_runs_finished
from pinterest_dagster.lib.streaming_runs import STREAMING_JOB
from pinterest_dagster.settings import REPO_ROOT
from pinterest_dagster_tests.pipeline import execute_job_cli


def database_live_bytes(db: sqlite3.Connection) -> int:
    pages, free, page_size = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count", "page_size"))
    return (pages - free) * page_size


def live_bytes(home: Path) -> dict[str, int]:
    """Live bytes of every SQLite database under DAGSTER_HOME, per database file."""
    sizes = {}
    for path in sorted(home.rglob("*.db")):
        with sqlite3.connect(path) as db:
            sizes[str(path.relative_to(home))] = database_live_bytes(db)
    return sizes


def live_bytes_by_table(home: Path) -> dict[str, int]:
    """Bytes of every table (and index) of the instance's shared SQLite databases, as `database:table`,
    largest first, plus `per-run event logs` for the databases of each run's events (SQLite's dbstat)."""
    sizes: dict[str, int] = {"per-run event logs": 0}
    for path in sorted(home.rglob("*.db")):
        with sqlite3.connect(path) as db:
            if path.parent.name == "runs" and path.name != "index.db":  # history/runs/<run id>.db
                sizes["per-run event logs"] += database_live_bytes(db)
                continue
            for name, size in db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
                sizes[f"{path.relative_to(home)}:{name}"] = size
    return dict(sorted(sizes.items(), key=lambda item: -item[1]))


LAUNCHED = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def successful_streaming_runs(instance: dg.DagsterInstance) -> int:
    return instance.get_runs_count(dg.RunsFilter(job_name=STREAMING_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]))


def measure(runs: int, rate: float, timeout_s: float) -> dict[str, float]:
    settings, env = fresh_workspace()
    home = Path(env["DAGSTER_HOME"])
    emulator = subprocess.Popen([str(REPO_ROOT / ".venv/bin/python"), "-m", "emulator", "post", "--rate", str(rate), "--quiet"],
                                cwd=REPO_ROOT, env=env)
    daemon = start_daemon(env)
    instance = dg.DagsterInstance.from_config(str(home))
    deadline = time.monotonic() + timeout_s
    try:
        while (done := successful_streaming_runs(instance)) < runs:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {done} micro-batches succeeded in {timeout_s:.0f} s")
            progress(f"dagster_storage: {done} of {runs} micro-batches")
            time.sleep(15)
    finally:
        emulator.terminate()
        emulator.wait()
    wait_runs_finished(str(home))
    daemon.terminate()
    daemon.wait()
    # A run the sensor launched between that wait and the daemon's end goes on in a process of its own: let it end,
    # so that housekeeping finds it done. (One it only queued stays queued: never run, not counted.)
    wait_runs_finished(str(home), statuses=LAUNCHED)
    streaming_runs = successful_streaming_runs(instance)
    all_runs = instance.get_runs_count()
    before = live_bytes(home)
    execute_job_cli("housekeeping_job", {"ops": {"delete_old_streaming_runs": {"config": {"keep_successful_streaming_runs_hours": 0}}}},
                    env, home)
    after = live_bytes(home)
    left = successful_streaming_runs(instance)
    per_1000 = 1000 / streaming_runs
    return {
        "micro_batches": streaming_runs, "runs_of_any_job": all_runs, "left_after_housekeeping": left,
        "bytes_before": sum(before.values()), "bytes_after": sum(after.values()),
        "mb_per_1000_before": sum(before.values()) * per_1000 / 1e6,
        "mb_per_1000_after": sum(after.values()) * per_1000 / 1e6,
        **{f"before {name}": size for name, size in before.items() if size > 100_000},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dagster_storage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="successful micro-batches to wait for")
    parser.add_argument("--rate", type=float, default=20, help="posts per second (3 events each)")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--discard", action="store_true", help="delete the topics and folders after success")
    args = parser.parse_args()
    for name, value in measure(args.runs, args.rate, args.timeout).items():
        print(f"{name}: {value:,.2f}" if isinstance(value, float) else f"{name}: {value:,}")
    if args.discard:
        discard_workspaces()


if __name__ == "__main__":
    main()
