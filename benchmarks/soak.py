"""Runs for days, compressed: a sustained load under the daemon with maintenance and housekeeping on their
schedules. Does the pipeline level off, do files stay few, does Dagster's storage stay bounded?

    SPARK_REMOTE=sc://127.0.0.1:15002 .venv/bin/python -m benchmarks.soak --rate 3867 --minutes 20

In a fresh workspace (topics, lake, SQLite DAGSTER_HOME) the Dagster daemon evaluates the streaming sensor,
`maintenance_schedule` and `housekeeping_schedule`, both every `--every` minutes here instead of hourly
(PINTEREST_MAINTENANCE_CRON, PINTEREST_HOUSEKEEPING_CRON), housekeeping keeping successful micro-batch runs
as long (PINTEREST_KEEP_SUCCESSFUL_RUNS_HOURS), while the emulator posts `--rate` posts/s (3 events each:
3,867 posts/s is 11,600 events/s) for `--minutes`. Every few seconds it samples the lag (events in Kafka
not in the lake yet: Kafka's end offsets against the sensor's cursor and the ranges of runs in flight) and
records each micro-batch that succeeded (its events, when it ended), and after each housekeeping run
Dagster's storage: the live bytes of its SQLite databases plus the captured logs' files, and how much of it
the runs still stored hold (their own event-log databases, step logs and rows in the event index). Once
posting stopped and the lake caught up: data files per table and partition (the current version's) and the
Delta logs' bytes. Dagster's storage growth is measured between two housekeeping runs, the first one that
found runs old enough to delete and the last one, both right after a clean-up; what the runs kept hold (the
last `--every` minutes of them, a window that moves, as many or not from one clean-up to the next) is left
out of the figure judged against the target, and reported beside it. What is left is what would still grow
over days (ticks, runs kept for good, events of no run). At the end the storage is broken down by table
(SQLite's dbstat), the runs' own event-log databases summed: the tables that still grow are what to bound
next.

Targets (issue "Runs for days"): lag and micro-batch size level off (the mean of the last 5 minutes no
higher than that of minutes 5-10); no table holds more than 50 data files per partition once maintenance
has run; Dagster's storage grows by less than 1 MB per 100 micro-batches after housekeeping.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import dagster as dg

from benchmarks.common import Comparison, fresh_workspace, progress, report_from_process
from benchmarks.dagster_storage import live_bytes, live_bytes_by_table
from benchmarks.streaming import start_daemon, wait_runs_finished, wait_sensor_ticking
from pinterest_dagster.defs.maintenance.jobs import TABLES
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.kafka import end_offsets
from pinterest_dagster.lib.offsets import lag_per_topic
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.lib.streaming_runs import STREAMING_JOB, configured_ranges, ranges_in_flight, streaming_cursor
from pinterest_dagster.settings import REPO_ROOT, Settings

MAX_FILES_PER_PARTITION = 50
STORAGE_BYTES_PER_100_RUNS = 1_000_000
SAMPLE_EVERY_S = 5


def lag_now(settings: Settings, instance: dg.DagsterInstance) -> int | None:
    """Events in Kafka not in the lake yet: past the sensor's cursor, or in ranges of runs queued or running."""
    cursor = streaming_cursor(instance)
    if cursor is None:
        return None
    ends = {(tp.topic, tp.partition): end for tp, end in end_offsets(settings, list(settings.topics.values())).items()}
    return sum(lag_per_topic(ends, cursor, owned=ranges_in_flight(instance, except_group="")).values())


def per_minute(samples: list[tuple[float, float]], minutes: int) -> list[float | None]:
    """The mean of the (seconds since start, value) samples falling in each minute."""
    buckets = defaultdict(list)
    for t, value in samples:
        buckets[int(t // 60)].append(value)
    return [statistics.fmean(buckets[m]) if buckets[m] else None for m in range(minutes)]


def levels_off(series: list[float | None], minutes: int) -> tuple[float, float]:
    """(mean of minutes 5-10, mean of the last 5 minutes), minutes without a sample left out."""
    def mean(values):
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else 0.0
    return mean(series[5:10]), mean(series[max(0, minutes - 5):minutes])


def files_per_partition(files: list[str]) -> dict[str, int]:
    """Data files per partition directory (`_kafka_date=...`), or per table when it is not partitioned."""
    counts: dict[str, int] = defaultdict(int)
    for path in files:
        parts = [p for p in path.split("/") if "=" in p]
        counts["/".join(parts) or "(table)"] += 1
    return dict(counts)


def newly_succeeded(instance: dg.DagsterInstance, seen: dict[str, set[str]], job: str) -> list[str]:
    """The runs of `job` that succeeded since the last look, added to `seen` (housekeeping deletes old runs,
    so they are counted as they succeed)."""
    new = [run.run_id for run in instance.get_runs(dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS]),
                                                   limit=100) if run.run_id not in seen[job]]
    seen[job].update(new)
    return new


def files_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def index_bytes_of_runs(home: Path, run_ids: list[str]) -> int:
    """The bytes of the events of these runs in the instance's SQLite event index (history/runs/index.db): its
    materializations, observations and run status events, which `delete_run` deletes with the run."""
    index = home / "history/runs/index.db"
    if not index.exists():
        return 0
    total = 0
    with sqlite3.connect(index) as db:
        for i in range(0, len(run_ids), 500):
            chunk = run_ids[i:i + 500]
            total += db.execute(f"SELECT COALESCE(SUM(LENGTH(event)), 0) FROM event_logs WHERE run_id IN "
                                f"({', '.join('?' * len(chunk))})", chunk).fetchone()[0]
    return total


def storage_bytes(instance: dg.DagsterInstance, home: Path) -> tuple[int, int]:
    """Dagster's storage: (the live bytes of its SQLite databases plus the captured logs' files under storage/,
    the part of it that is the runs still stored: their own event-log databases, step logs and events in the
    event index). The runs kept are those younger than the age housekeeping keeps, a window that moves, not
    growth."""
    databases, logs = live_bytes(home), home / "storage"
    total = sum(databases.values()) + files_bytes(logs)
    run_ids = list(instance.get_run_ids())
    kept = index_bytes_of_runs(home, run_ids) + sum(
        databases.get(f"history/runs/{run_id}.db", 0) + files_bytes(logs / run_id) for run_id in run_ids)
    return total, kept


def storage_after_housekeeping(instance: dg.DagsterInstance, home: Path, seen: dict[str, set[str]], t: float,
                               micro_batches: int) -> list[tuple[float, int, int, int, int]]:
    """A sample of Dagster's storage if a housekeeping run succeeded since the last look: (seconds since the
    start, bytes, bytes of the runs kept, micro-batches so far, runs it deleted)."""
    newly_succeeded(instance, seen, "maintenance_job")
    new_clean_ups = newly_succeeded(instance, seen, "housekeeping_job")
    if not new_clean_ups:
        return []
    # Its step's metadata: how many runs it deleted (0 until runs older than the age exist).
    logs = instance.all_logs(new_clean_ups[0], of_type=dg.DagsterEventType.STEP_OUTPUT)
    deleted = next((int(e.dagster_event.step_output_data.metadata["runs_deleted"].value) for e in logs), 0)
    return [(t, *storage_bytes(instance, home), micro_batches, deleted)]


def storage_growth(samples: list[tuple[float, int, int, int, int]]) -> tuple[float | None, float | None, dict]:
    """Bytes per 100 micro-batches between the first housekeeping run that deleted runs and the last one: all of
    Dagster's storage, and what is left without the runs kept (what would still grow over days)."""
    deleting = [s for s in samples if s[4] > 0]
    if len(deleting) < 2 or deleting[-1][3] == deleting[0][3]:
        return None, None, {}
    (t0, total0, kept0, batches0, _), (t1, total1, kept1, batches1, _) = deleting[0], deleting[-1]
    per_100 = 100 / (batches1 - batches0)
    return ((total1 - total0) * per_100, ((total1 - kept1) - (total0 - kept0)) * per_100,
            {"after_first_clean_up_bytes": total0, "after_last_clean_up_bytes": total1,
             "runs_kept_after_first_clean_up_bytes": kept0, "runs_kept_after_last_clean_up_bytes": kept1,
             "micro_batches_between": batches1 - batches0, "minutes_between": (t1 - t0) / 60})


def lake_facts(spark, settings: Settings) -> dict[str, dict]:
    """Per table: its data files, the most in one partition, and the bytes of its Delta log."""
    facts = {}
    for table in TABLES:
        path = settings.table_path(*table.split("/"))
        if not delta.table_exists(spark, path):
            continue
        files = delta.read_table(spark, path).inputFiles()
        log = Path(path) / "_delta_log"
        facts[table] = {"data_files": len(files), "most_files_in_a_partition": max(files_per_partition(files).values(), default=0),
                        "delta_log_bytes": sum(f.stat().st_size for f in log.rglob("*") if f.is_file()) if log.is_dir() else 0}
    return facts


def soak(rate: float, minutes: int, every_minutes: int, timeout_s: float) -> dict:
    settings, env = fresh_workspace()
    env.update({"PINTEREST_MAINTENANCE_CRON": f"*/{every_minutes} * * * *",
                "PINTEREST_HOUSEKEEPING_CRON": f"*/{every_minutes} * * * *",
                "PINTEREST_KEEP_SUCCESSFUL_RUNS_HOURS": str(every_minutes / 60)})
    home = Path(env["DAGSTER_HOME"])
    instance = dg.DagsterInstance.from_config(str(home))
    daemon = start_daemon(env)
    lags: list[tuple[float, float]] = []
    batches: dict[str, tuple[float, int]] = {}  # run id -> (seconds since start it ended, events)
    # After each housekeeping run: (seconds since start, bytes, bytes of the runs kept, micro-batches so far,
    # runs it deleted)
    cleaned_up: list[tuple[float, int, int, int, int]] = []
    # Successful runs seen, by job: housekeeping deletes the old ones, so they are counted as they succeed.
    seen: dict[str, set[str]] = defaultdict(set)
    try:
        wait_sensor_ticking(str(home))
        storage_before, _ = storage_bytes(instance, home)
        progress(f"soak: posting {rate * 3:,.0f} events/s for {minutes} min; maintenance and housekeeping every "
                 f"{every_minutes} min")
        started = time.time()
        emulator = subprocess.Popen([str(REPO_ROOT / ".venv/bin/python"), "-m", "emulator", "post", "--quiet",
                                     "--duration", str(minutes * 60), "--rate", str(rate)], cwd=REPO_ROOT, env=env)
        next_report = started + 60
        while emulator.poll() is None:
            now = time.time()
            lag = lag_now(settings, instance)
            if lag is not None:
                lags.append((now - started, lag))
            for record in instance.get_run_records(dg.RunsFilter(job_name=STREAMING_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]),
                                                   limit=200):
                if record.dagster_run.run_id not in batches and record.end_time:
                    batches[record.dagster_run.run_id] = (record.end_time - started,
                                                         sum(r.size for r in configured_ranges(record.dagster_run)))
            cleaned_up += storage_after_housekeeping(instance, home, seen, now - started, len(batches))
            if now >= next_report:
                progress(f"soak: minute {int((now - started) // 60)}: lag {lag if lag is not None else '?'} events, "
                         f"{len(batches)} micro-batches so far")
                next_report += 60
            time.sleep(SAMPLE_EVERY_S)
        if emulator.returncode != 0:
            raise SystemExit(f"the emulator failed ({emulator.returncode})")
        deadline = time.monotonic() + timeout_s
        while lag_now(settings, instance) not in (0, None) and time.monotonic() < deadline:
            time.sleep(SAMPLE_EVERY_S)
        caught_up_s = time.time() - started - minutes * 60
        wait_runs_finished(str(home), timeout_s)
    finally:
        daemon.terminate()
        daemon.wait()
    storage_after, _ = storage_bytes(instance, home)
    # What the storage holds at the end, by table: what housekeeping leaves is what grows.
    storage_tables = {name: size for name, size in live_bytes_by_table(home).items() if size >= 100_000}
    for job in ("maintenance_job", "housekeeping_job"):  # those that succeeded after posting stopped
        newly_succeeded(instance, seen, job)
    maintenance_runs, housekeeping_runs = len(seen["maintenance_job"]), len(seen["housekeeping_job"])
    facts = lake_facts(build_spark_session(settings), settings)
    events = [(t, size) for t, size in batches.values() if t < minutes * 60]
    return {"lag_per_minute": per_minute(lags, minutes), "batch_per_minute": per_minute(events, minutes),
            "micro_batches": len(batches), "caught_up_after_posting_s": caught_up_s, "lake": facts,
            "storage_before": storage_before, "storage_after": storage_after, "after_housekeeping": cleaned_up,
            "storage_tables": storage_tables,
            "maintenance_runs": maintenance_runs, "housekeeping_runs": housekeeping_runs}


def comparisons(result: dict, parameters: dict) -> list[Comparison]:
    minutes = parameters["minutes"]
    # Shorter than 15 minutes, minutes 5-10 and the last 5 overlap: the level-off figures are reported only.
    level_target = 1.0 if minutes >= 15 else None
    lag_early, lag_late = levels_off(result["lag_per_minute"], minutes)
    batch_early, batch_late = levels_off(result["batch_per_minute"], minutes)
    worst_table, worst = max(((t, f["most_files_in_a_partition"]) for t, f in result["lake"].items()), key=lambda x: x[1])
    per_100, left_per_100, between = storage_growth(result["after_housekeeping"])
    checked = (f"{result['micro_batches']} micro-batches succeeded, {result['maintenance_runs']} maintenance and "
               f"{result['housekeeping_runs']} housekeeping runs; the lake caught up "
               f"{result['caught_up_after_posting_s']:.0f} s after posting stopped")
    return [
        Comparison("soak_lag", "soak: lag in events, minutes 5-10 vs the last 5 (mean per minute)",
                   {"lag_minutes_5_10": lag_early, "lag_last_5": lag_late, "lag_per_minute": result["lag_per_minute"]},
                   (lag_early + 1) / (lag_late + 1), level_target, "the last 5 minutes' lag no higher than minutes 5-10's",
                   "events", parameters, checked),
        Comparison("soak_batch_size", "soak: micro-batch size in events, minutes 5-10 vs the last 5 (mean per minute)",
                   {"batch_minutes_5_10": batch_early, "batch_last_5": batch_late,
                    "batch_per_minute": result["batch_per_minute"]},
                   (batch_early + 1) / (batch_late + 1), level_target,
                   "the last 5 minutes' micro-batches no larger than minutes 5-10's",
                   "events", parameters, checked),
        Comparison("soak_files", f"soak: most data files in one partition of a table ({worst_table})",
                   {"most_files_in_a_partition": worst, **{f"{t} files": f["data_files"] for t, f in result["lake"].items()},
                    **{f"{t} delta_log_bytes": f["delta_log_bytes"] for t, f in result["lake"].items()}},
                   MAX_FILES_PER_PARTITION / max(1, worst), 1.0, f"no more than {MAX_FILES_PER_PARTITION} per partition",
                   "files", parameters, checked),
        Comparison("soak_dagster_storage", "soak: Dagster storage growth per 100 micro-batches between clean-ups, "
                   "the runs kept left out (bytes)",
                   {"storage_before": result["storage_before"], "storage_after": result["storage_after"],
                    "growth_per_100_micro_batches": per_100, "growth_per_100_micro_batches_runs_kept_left_out": left_per_100,
                    **between,
                    "after_each_housekeeping_run": result["after_housekeeping"],
                    **{f"at the end {name}": size for name, size in result["storage_tables"].items()}},
                   STORAGE_BYTES_PER_100_RUNS / max(1.0, left_per_100) if left_per_100 is not None else 0.0, 1.0,
                   "less than 1 MB per 100 micro-batches (0: fewer than two clean-ups that deleted runs)", "bytes",
                   parameters, checked),
    ]


def compare_soak(events_per_s: int, minutes: int, every_minutes: int, timeout_s: float = 1800) -> list[Comparison]:
    parameters = {"events_per_s": events_per_s, "minutes": minutes, "maintenance_and_housekeeping_every_minutes": every_minutes}
    return comparisons(soak(events_per_s / 3, minutes, every_minutes, timeout_s), parameters)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=3867, help="posts per second (3 events each)")
    parser.add_argument("--minutes", type=int, default=20)
    parser.add_argument("--every", type=int, default=5, help="minutes between maintenance runs, and between housekeeping runs")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", action="store_true", help="print the comparisons as one JSON line")
    args = parser.parse_args()
    if "SPARK_REMOTE" not in os.environ:
        progress("soak: SPARK_REMOTE is not set: every micro-batch starts a Spark JVM of its own")
    report_from_process(compare_soak(round(args.rate * 3), args.minutes, args.every, args.timeout), args.json, discard=False)


if __name__ == "__main__":
    main()
