"""Runs for days, compressed: a sustained load under the daemon with maintenance and housekeeping on their
schedules. Does the pipeline level off, do files stay few, does Dagster's storage stay bounded?

    SPARK_REMOTE=sc://127.0.0.1:15002 .venv/bin/python -m benchmarks.soak --rate 3867 --minutes 20

In a fresh workspace (topics, lake, SQLite DAGSTER_HOME) the Dagster daemon evaluates the streaming sensor,
`maintenance_schedule` and `housekeeping_schedule`, both every `--every` minutes here instead of hourly
(PINTEREST_MAINTENANCE_CRON, PINTEREST_HOUSEKEEPING_CRON), housekeeping keeping successful micro-batch runs
as long (PINTEREST_KEEP_SUCCESSFUL_RUNS_HOURS), while `--rate` posts/s (3 events each: 3,867 posts/s is
11,600 events/s) are posted for `--minutes`: the emulator's posts, sent through librdkafka
(`benchmarks/load.py`, a quarter of the emulator's CPU) or, with `--poster emulator`, by the emulator.
Every few seconds it samples the lag (events in Kafka not in the lake yet: Kafka's end offsets against the
sensor's cursor and the ranges of runs in flight) and records each micro-batch that succeeded (its events,
when it ended), and after each housekeeping run Dagster's storage: the live bytes of its SQLite databases plus
the captured logs' files. Once posting stopped and the lake caught up: data files per table and partition (the
current version's) and the Delta logs' bytes. Then, with the daemon stopped, what stays of Dagster's storage
for good: the runs the daemon left queued are deleted (they would have run, and gone in their turn) and what
`housekeeping_job` does is done keeping nothing, as a clean-up a day later would; what is left, less what the
workspace held before posting, per 100 micro-batches, is the figure judged against the target, with what is
left broken down by table (SQLite's dbstat, the runs' own event-log databases summed): what still grows is
what to bound next. The growth between the first housekeeping run that found runs old enough to delete and the
last one is reported beside it; it includes the runs each clean-up keeps (the last `--every` minutes of them),
a window that holds more runs or fewer from one clean-up to the next, so it swings both ways.

Targets (issue "Runs for days"): lag and micro-batch size level off (the mean of the last 5 minutes no
higher than that of minutes 5-10); no table holds more than 50 data files per partition once maintenance
has run; Dagster's storage grows by less than 1 MB per 100 micro-batches after housekeeping.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import dagster as dg

from benchmarks.common import Comparison, comparisons_from_process, fresh_workspace, progress, report_from_process
from benchmarks.dagster_storage import live_bytes, live_bytes_by_table
from benchmarks.load import source_posts
from benchmarks.streaming import start_daemon, wait_runs_finished, wait_sensor_ticking
from pinterest_dagster.defs.housekeeping.jobs import clean_up, delete_run_fully
from pinterest_dagster.defs.maintenance.jobs import TABLES, tables_of
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.kafka import end_offsets
from pinterest_dagster.lib.maintenance import files_per_partition
from pinterest_dagster.lib.offsets import lag_per_topic
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.lib.streaming_runs import STREAMING_JOB, configured_ranges, ranges_in_flight, streaming_cursor
from pinterest_dagster.settings import REPO_ROOT, Settings

MAX_FILES_PER_PARTITION = 50
STORAGE_BYTES_PER_100_RUNS = 1_000_000
SAMPLE_EVERY_S = 5
# What posts the load (`--poster`): the same posts either way (benchmarks/load.py). On 2 cores the emulator's
# kafka-python producer takes 88% of a core at 11,600 events/s, which the pipeline under test then lacks;
# librdkafka takes 23%.
POSTERS = {"librdkafka": ["benchmarks.load"], "emulator": ["emulator", "post", "--quiet"]}
DEFAULT_POSTER = "librdkafka"


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


def newly_succeeded(instance: dg.DagsterInstance, seen: dict[str, set[str]], job: str) -> list[str]:
    """The runs of `job` that succeeded since the last look, added to `seen` (housekeeping deletes old runs,
    so they are counted as they succeed)."""
    new = [run.run_id for run in instance.get_runs(dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS]),
                                                   limit=100) if run.run_id not in seen[job]]
    seen[job].update(new)
    return new


# The jobs of the two schedules the soak runs often (housekeeping's ROUTINE_JOBS also counts streaming_job).
SCHEDULED_JOBS = ("maintenance_job", "housekeeping_job")
# Runs that have started. The queued ones are left out: a maintenance pass queues its runs at once, and
# after a backlog of passes the newest 100 of all statuses would leave out the oldest, which run first.
STARTED_STATUSES = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.SUCCESS,
                    dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def routine_runs_seen(instance: dg.DagsterInstance, started: float, seen: dict[str, tuple[str, float, float | None]]) -> None:
    """Adds to `seen` the maintenance and housekeeping runs that started, by run id: (job and the table it
    maintained, or how many when it maintained the other tables together; minute it started; minute it ended
    or None), minutes since `started`. Recorded as they run: housekeeping deletes them later."""
    for job in SCHEDULED_JOBS:
        for record in instance.get_run_records(dg.RunsFilter(job_name=job, statuses=STARTED_STATUSES), limit=100):
            if record.start_time:
                end = (record.end_time - started) / 60 if record.end_time else None
                tables = tables_of(record.dagster_run)
                label = job if not tables else f"{job} {tables[0]}" if len(tables) == 1 else f"{job} {len(tables)} other tables"
                seen[record.dagster_run.run_id] = (label,
                                                   round((record.start_time - started) / 60, 2),
                                                   None if end is None else round(end, 2))


def files_bytes(path: Path) -> int:
    """The bytes of the files under a folder (0 when there is none)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def storage_bytes(home: Path) -> int:
    """Dagster's storage: the live bytes of its SQLite databases plus the captured logs' files (storage/)."""
    return sum(live_bytes(home).values()) + files_bytes(home / "storage")


def storage_after_housekeeping(instance: dg.DagsterInstance, home: Path, seen: dict[str, set[str]], t: float,
                               micro_batches: int) -> list[tuple[float, int, int, int]]:
    """A sample of Dagster's storage if a housekeeping run succeeded since the last look: (seconds since the
    start, bytes, micro-batches so far, runs it deleted)."""
    newly_succeeded(instance, seen, "maintenance_job")
    new_clean_ups = newly_succeeded(instance, seen, "housekeeping_job")
    if not new_clean_ups:
        return []
    # Its step's metadata: how many runs it deleted (0 until runs older than the age exist).
    logs = instance.all_logs(new_clean_ups[0], of_type=dg.DagsterEventType.STEP_OUTPUT)
    deleted = next((int(e.dagster_event.step_output_data.metadata["runs_deleted"].value) for e in logs), 0)
    return [(t, storage_bytes(home), micro_batches, deleted)]


def storage_growth(samples: list[tuple[float, int, int, int]]) -> tuple[float | None, dict]:
    """Bytes per 100 micro-batches between the first housekeeping run that deleted runs and the last one, the
    runs kept at each (the last few minutes' worth) included."""
    deleting = [s for s in samples if s[3] > 0]
    if len(deleting) < 2 or deleting[-1][2] == deleting[0][2]:
        return None, {}
    first, last = deleting[0], deleting[-1]
    return ((last[1] - first[1]) / (last[2] - first[2]) * 100,
            {"after_first_clean_up_bytes": first[1], "after_last_clean_up_bytes": last[1],
             "micro_batches_between": last[2] - first[2], "minutes_between": (last[0] - first[0]) / 60})


def stays_per_micro_batches(before: int, left: int, micro_batches: int, per: int = 100) -> float:
    """Bytes that stay per `per` micro-batches: what the clean-up left less what the workspace held before."""
    return (left - before) / max(1, micro_batches) * per


def what_stays(instance: dg.DagsterInstance, home: Path) -> tuple[int, int]:
    """With the daemon stopped: deletes the runs it left queued (they would have run, and gone in their turn),
    then does what housekeeping_job does keeping nothing, as a clean-up a day later would. What is left is what stays
    for good. Returns (bytes left, queued runs deleted)."""
    queued = [run.run_id for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED,
                                                                             dg.DagsterRunStatus.NOT_STARTED]))]
    for run_id in queued:
        delete_run_fully(instance, run_id)
    clean_up(instance, keep_hours=0)  # what housekeeping_job does, without a run of its own to store
    return storage_bytes(home), len(queued)


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
                        "delta_log_bytes": files_bytes(log)}
    return facts


def soak(rate: float, minutes: int, every_minutes: int, timeout_s: float, poster: str = DEFAULT_POSTER) -> dict:
    source_posts(Settings.from_env())  # a source database to post from, before anything starts
    settings, env = fresh_workspace()
    env.update({"PINTEREST_MAINTENANCE_CRON": f"*/{every_minutes} * * * *",
                "PINTEREST_HOUSEKEEPING_CRON": f"*/{every_minutes} * * * *",
                "PINTEREST_KEEP_SUCCESSFUL_RUNS_HOURS": str(every_minutes / 60)})
    home = Path(env["DAGSTER_HOME"])
    instance = dg.DagsterInstance.from_config(str(home))
    daemon = start_daemon(env)
    lags: list[tuple[float, float]] = []
    batches: dict[str, tuple[float, int]] = {}  # run id -> (seconds since start it ended, events)
    run_seconds: dict[str, tuple[float, float]] = {}  # run id -> (seconds since start it ended, its run time)
    # Maintenance and housekeeping runs by run id: (job, minute started, minute ended): what a rise of the lag
    # in some minute is to be compared with.
    routine: dict[str, tuple[str, float, float | None]] = {}
    # After each housekeeping run: (seconds since start, bytes, micro-batches so far, runs it deleted)
    cleaned_up: list[tuple[float, int, int, int]] = []
    # Successful runs seen, by job: housekeeping deletes the old ones, so they are counted as they succeed.
    seen: dict[str, set[str]] = defaultdict(set)
    posting = None
    try:
        wait_sensor_ticking(str(home))
        storage_before = storage_bytes(home)
        progress(f"soak: posting {rate * 3:,.0f} events/s for {minutes} min ({poster}); maintenance and "
                 f"housekeeping every {every_minutes} min")
        started = time.time()
        posting = subprocess.Popen([str(REPO_ROOT / ".venv/bin/python"), "-m", *POSTERS[poster],
                                     "--duration", str(minutes * 60), "--rate", str(rate)], cwd=REPO_ROOT, env=env,
                                    stdout=sys.stderr)  # this process's stdout carries --json's line alone
        next_report = started + 60
        while posting.poll() is None:
            now = time.time()
            lag = lag_now(settings, instance)
            if lag is not None:
                lags.append((now - started, lag))
            for record in instance.get_run_records(dg.RunsFilter(job_name=STREAMING_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]),
                                                   limit=200):
                if record.dagster_run.run_id not in batches and record.end_time:
                    batches[record.dagster_run.run_id] = (record.end_time - started,
                                                         sum(r.size for r in configured_ranges(record.dagster_run)))
                    if record.start_time:
                        run_seconds[record.dagster_run.run_id] = (record.end_time - started,
                                                                 record.end_time - record.start_time)
            routine_runs_seen(instance, started, routine)
            cleaned_up += storage_after_housekeeping(instance, home, seen, now - started, len(batches))
            if now >= next_report:
                progress(f"soak: minute {int((now - started) // 60)}: lag {lag if lag is not None else '?'} events, "
                         f"{len(batches)} micro-batches so far")
                next_report += 60
            time.sleep(SAMPLE_EVERY_S)
        if posting.returncode != 0:
            raise SystemExit(f"the poster ({poster}) failed ({posting.returncode})")
        deadline = time.monotonic() + timeout_s
        while lag_now(settings, instance) not in (0, None) and time.monotonic() < deadline:
            time.sleep(SAMPLE_EVERY_S)
        caught_up_s = time.time() - started - minutes * 60
        wait_runs_finished(str(home), timeout_s)
        routine_runs_seen(instance, started, routine)  # the ends of the last ones
    finally:
        if posting is not None and posting.poll() is None:  # the soak failed while posting: stop the load too
            posting.terminate()
            posting.wait()
        daemon.terminate()
        daemon.wait()
    storage_after = storage_bytes(home)
    for job in SCHEDULED_JOBS:  # those that succeeded after posting stopped
        newly_succeeded(instance, seen, job)
    maintenance_runs, housekeeping_runs = len(seen["maintenance_job"]), len(seen["housekeeping_job"])
    storage_left, queued_left = what_stays(instance, home)
    # What stays, by table: what still grows with the number of micro-batches is what to bound next.
    storage_tables = {name: size for name, size in live_bytes_by_table(home).items() if size >= 50_000}
    facts = lake_facts(build_spark_session(settings), settings)
    events = [(t, size) for t, size in batches.values() if t < minutes * 60]
    durations = [(t, seconds) for t, seconds in run_seconds.values() if t < minutes * 60]
    return {"lag_per_minute": per_minute(lags, minutes), "batch_per_minute": per_minute(events, minutes),
            "run_seconds_per_minute": per_minute(durations, minutes),
            "routine_runs": sorted(routine.values(), key=lambda run: run[1]),
            "micro_batches": len(batches), "caught_up_after_posting_s": caught_up_s, "lake": facts,
            "storage_before": storage_before, "storage_after": storage_after, "after_housekeeping": cleaned_up,
            "storage_left": storage_left, "queued_runs_left": queued_left, "storage_tables": storage_tables,
            "maintenance_runs": maintenance_runs, "housekeeping_runs": housekeeping_runs}


def comparisons(result: dict, parameters: dict) -> list[Comparison]:
    minutes = parameters["minutes"]
    # Shorter than 15 minutes, minutes 5-10 and the last 5 overlap: the level-off figures are reported only. So is
    # the storage that stays per 100 micro-batches: what stays differs from what the workspace held before by some
    # 100 KB either way in the soaks measured (-16 KB after 27 micro-batches at 03:02 on 2026-12-05, +160 KB after
    # 8 in a 3-minute one), and a short soak's few micro-batches (6 to 10 in the 3-minute ones) scale that up 10- to
    # 17-fold.
    level_target = 1.0 if minutes >= 15 else None
    lag_early, lag_late = levels_off(result["lag_per_minute"], minutes)
    batch_early, batch_late = levels_off(result["batch_per_minute"], minutes)
    worst_table, worst = max(((t, f["most_files_in_a_partition"]) for t, f in result["lake"].items()), key=lambda x: x[1])
    per_100, between = storage_growth(result["after_housekeeping"])
    stays_per_100 = stays_per_micro_batches(result["storage_before"], result["storage_left"], result["micro_batches"])
    checked = (f"{result['micro_batches']} micro-batches succeeded, {result['maintenance_runs']} maintenance and "
               f"{result['housekeeping_runs']} housekeeping runs; the lake caught up "
               f"{result['caught_up_after_posting_s']:.0f} s after posting stopped")
    return [
        Comparison("soak_lag", "soak: lag in events, minutes 5-10 vs the last 5 (mean per minute)",
                   {"lag_minutes_5_10": lag_early, "lag_last_5": lag_late, "lag_per_minute": result["lag_per_minute"],
                    # What a rise of the lag is to be compared with: how long micro-batches took, and when
                    # maintenance and housekeeping ran ([job, minute started, minute ended]).
                    "micro_batch_run_seconds_per_minute": result["run_seconds_per_minute"],
                    "maintenance_and_housekeeping_runs": [list(run) for run in result["routine_runs"]]},
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
        Comparison("soak_dagster_storage", "soak: Dagster storage that stays once housekeeping deleted every "
                   "successful routine run, per 100 micro-batches (bytes)",
                   {"storage_before": result["storage_before"], "storage_after": result["storage_after"],
                    "storage_left": result["storage_left"], "queued_runs_left_by_the_daemon": result["queued_runs_left"],
                    "stays_per_100_micro_batches": stays_per_100,
                    "growth_per_100_micro_batches_between_clean_ups": per_100, **between,
                    "after_each_housekeeping_run": result["after_housekeeping"],
                    **{f"left {name}": size for name, size in result["storage_tables"].items()}},
                   STORAGE_BYTES_PER_100_RUNS / max(1.0, stays_per_100), level_target, "less than 1 MB per 100 micro-batches",
                   "bytes", parameters, checked),
    ]


def run(events_per_s: int, minutes: int, every_minutes: int, timeout_s: float = 1800,
        poster: str = DEFAULT_POSTER) -> list[Comparison]:
    parameters = {"events_per_s": events_per_s, "minutes": minutes, "maintenance_and_housekeeping_every_minutes": every_minutes,
                  "poster": poster}
    return comparisons(soak(events_per_s / 3, minutes, every_minutes, timeout_s, poster), parameters)


def compare_soak(events_per_s: int, minutes: int, every_minutes: int, timeout_s: float = 1800) -> list[Comparison]:
    """`python -m benchmarks` runs the soak through its command line, in a process of its own."""
    return comparisons_from_process("benchmarks.soak", "--rate", str(events_per_s / 3), "--minutes", str(minutes),
                                    "--every", str(every_minutes), "--timeout", str(timeout_s))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=3867, help="posts per second (3 events each)")
    parser.add_argument("--minutes", type=int, default=20)
    parser.add_argument("--every", type=int, default=5, help="minutes between maintenance runs, and between housekeeping runs")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--poster", choices=list(POSTERS), default=DEFAULT_POSTER,
                        help="what posts: librdkafka (benchmarks/load.py, the default) or the emulator (kafka-python)")
    parser.add_argument("--json", action="store_true", help="print the comparisons as one JSON line")
    parser.add_argument("--discard", action="store_true", help="delete the topics and folders after success")
    args = parser.parse_args()
    if "SPARK_REMOTE" not in os.environ:
        progress("soak: SPARK_REMOTE is not set: every micro-batch starts a Spark JVM of its own")
    report_from_process(run(round(args.rate * 3), args.minutes, args.every, args.timeout, args.poster),
                        args.json, args.discard)


if __name__ == "__main__":
    main()
