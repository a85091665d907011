"""A micro-batch costs what its batch holds, not what the lake has accumulated: the daemon's runs on a lake
with history against a fresh lake, under the same load, in the same run.

    SPARK_REMOTE=sc://127.0.0.1:15002 .venv/bin/python -m benchmarks.history --history-posts 3000000 --rate 333 --seconds 60

(a) The emulator posts a backlog of `--history-posts` posts (3 events each) at full speed and the daemon
drains it through the pipeline itself, as benchmarks/streaming.py drains a backlog; then it posts at
`--rate` posts/s for `--seconds` while the daemon runs. (b) The same load goes into a fresh workspace.
Each side gets two windows, in the order fresh, history, history, fresh (`window_order`; `--windows-per-side 1`,
as `make bench-quick` runs it, gives fresh, history). Per side, over its windows: the median run time of the
runs that ingested the window (the Dagster instance's run records of the runs started after posting began),
the produce -> cleaned/pin latency of the window's pin events (history excluded, checked against the events
produced in the window), and the raw/pin files that the cleaned/pin merge's source query and
category_trends' batch query open for a sample of those runs
(Spark's scan metrics, measured afterwards on the final lake), beside raw/pin's data files. Last,
Structured Streaming (benchmarks/structured_streaming.py `latency --history`) drains the same topics into
a lake of its own and is measured on the window it posts.

The scan metrics need an in-process (classic) session: this process builds one, while the daemon and its
runs use Spark Connect through their environment (SPARK_REMOTE). A process that has opened a Connect
session cannot build a classic one, so `python -m benchmarks` runs this module in a process of its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics

import dagster as dg
from pyspark.sql.utils import is_remote

from benchmarks.common import (Comparison, comparisons_from_process, fresh_workspace, percentiles, post, progress,
                               report_from_process, require_same)
from benchmarks.scan_metrics import files_scanned
from benchmarks.streaming import daemon_latencies, drain_with_daemon, structured_streaming
from pinterest_dagster.defs.clean.assets import latest_cleaned
from pinterest_dagster.defs.merge.assets import MERGE_STEP
from pinterest_dagster.defs.streaming.jobs import STREAMING_TAGS
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import OffsetRange, events_in
from pinterest_dagster.lib.kafka import events_per_topic
from pinterest_dagster.lib.microbatch import INGEST_STEP
from pinterest_dagster.lib.realtime_state import REALTIME_TABLES
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import Settings

SAMPLED_RUNS = 10  # runs whose merges' scans are measured, per side
PARTS = ("launch", "teardown", "step_", "merge_to_")  # the parts of a run's time that run_profile measures


def window_order(per_side: int) -> tuple[str, ...]:
    """Twice per side, an order that gives neither side the windows right after the history's drain (the
    Connect server's busiest state) or the last ones (its most settled): fresh, history, history, fresh.
    Once per side (a harness check): fresh, history."""
    if per_side not in (1, 2):
        raise ValueError(f"windows per side: 1 or 2, not {per_side}")
    return ("fresh", "history", "history", "fresh") if per_side == 2 else ("fresh", "history")


def compare_history(history_posts: int, events_per_s: int, seconds: int, max_records_per_run: int,
                    windows_per_side: int = 2, timeout_s: float = 3600) -> list[Comparison]:
    """`python -m benchmarks` has Spark Connect sessions open: the benchmark runs in a process of its own."""
    return comparisons_from_process(
        "benchmarks.history", "--history-posts", str(history_posts), "--rate", str(events_per_s / 3),
        "--seconds", str(seconds), "--max-records-per-run", str(max_records_per_run),
        "--windows-per-side", str(windows_per_side), "--timeout", str(timeout_s))


def classic_session(settings: Settings):
    """This process's own in-process session. Connect mode, once a session turned it on, takes over every
    later builder (and so does SPARK_REMOTE in the environment): refuse rather than measure nothing."""
    if "SPARK_REMOTE" in os.environ or is_remote():
        raise SystemExit("benchmarks.history needs a process without a Spark Connect session and without SPARK_REMOTE")
    spark = build_spark_session(dataclasses.replace(settings, spark_remote=None))
    if is_remote():
        raise SystemExit("build_spark_session gave a Spark Connect session: the scan metrics need a classic one")
    return spark


def workspace(max_records_per_run: int, spark_remote: str | None) -> tuple[Settings, dict]:
    """A fresh workspace whose daemon and runs reach Spark through `spark_remote` (Connect), if given."""
    settings, env = fresh_workspace(max_records_per_run)
    if spark_remote:
        env["SPARK_REMOTE"] = spark_remote
    return settings, env


def ingest_history(spark, settings: Settings, env: dict, posts: int, timeout_s: float) -> dict:
    """The backlog posted at full speed, then drained by the daemon: the lake holds it as a lake that
    streamed it would. Checked: every pin event of the backlog is in raw/pin."""
    progress(f"history: posting a backlog of {posts:,} posts to {settings.topic_prefix}.*")
    post(env, "--posts", str(posts), "--rate", "0", "--seed", "13")
    events = sum(events_per_topic(settings).values())
    progress(f"history: draining {events:,} events with the Dagster daemon")
    drained_s, _, runs = drain_with_daemon(spark, settings, env, timeout_s)
    require_same("raw/pin rows after the history drain vs pin events posted",
                 delta.read_table(spark, settings.table_path("raw", "pin")).count(),
                 events_per_topic(settings)[settings.topic("pin")])
    progress(f"history: drained in {drained_s:.1f} s ({runs} runs)")
    return {"history_events": events, "history_runs": runs}


def runs_since(records: list, since: float) -> list:
    """The run records that started at or after `since` (epoch s), in start order: after a drain has
    left no run in flight, the runs that ingested what was posted from `since` on."""
    return sorted((r for r in records if r.start_time is not None and r.start_time >= since), key=lambda r: r.start_time)


def evenly_spaced(items: list, n: int) -> list:
    """At most `n` of `items`, the first and the last among them, spread evenly over the rest."""
    if len(items) <= n:
        return list(items)
    if n == 1:
        return [items[0]]
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def ranges_of(run_config: dict) -> list[OffsetRange]:
    """The offset ranges a sensor's micro-batch run names in its config (lib/microbatch.py `run_config`)."""
    return [OffsetRange(**r) for r in run_config["ops"][INGEST_STEP]["config"]["ranges"]]


def window_runs(settings: Settings, env: dict, since: float, pin_events: int) -> list:
    """The runs that ingested the window; checked: all succeeded and their ranges hold exactly the window's
    pin events (a run from before the window, or a retry, would show here)."""
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    runs = runs_since(instance.get_run_records(dg.RunsFilter(tags=STREAMING_TAGS)), since)
    require_same("statuses of the window's runs", {r.dagster_run.status for r in runs}, {dg.DagsterRunStatus.SUCCESS})
    pin = settings.topic("pin")
    require_same("pin offsets named by the window's runs vs pin events of the window",
                 sum(r.size for run in runs for r in ranges_of(run.dagster_run.run_config) if r.topic == pin), pin_events)
    return runs


def run_profile(instance, record) -> dict[str, float]:
    """Where one run's time went, in seconds: from its start to its first step (`launch`), each step
    (`step_<key>`), within the merge step the time from its start to each table's materialization
    (`merge_to_<layer>_<table>`: cleaned/pin is committed first, the other four side by side), and from the
    last step's end to the run's (`teardown`)."""
    steps = sorted((s for s in instance.get_run_step_stats(record.dagster_run.run_id) if s.start_time and s.end_time),
                   key=lambda s: s.start_time)
    if not steps:
        return {}
    profile = {"launch": steps[0].start_time - record.start_time, "teardown": record.end_time - steps[-1].end_time,
               **{f"step_{s.step_key}": s.end_time - s.start_time for s in steps}}
    merge = next((s for s in steps if s.step_key == MERGE_STEP), None)
    if merge:
        materialized = instance.get_records_for_run(record.dagster_run.run_id,
                                                    of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        for event in materialized:
            key = event.event_log_entry.dagster_event.asset_key
            if key.path[0] in ("cleaned", "realtime"):
                profile[f"merge_to_{'_'.join(key.path)}"] = event.event_log_entry.timestamp - merge.start_time
    return profile


def median_profile(profiles: list[dict[str, float]]) -> dict[str, float]:
    """Each part's median over the runs that have it."""
    parts = sorted({part for profile in profiles for part in profile})
    return {part: statistics.median(p[part] for p in profiles if part in p) for part in parts}


def raw_files_read(spark, settings: Settings, ranges: list[OffsetRange]) -> tuple[int, int]:
    """raw/pin files opened by a run's cleaned/pin merge source and by its category_trends batch query, as
    the assets build them (`batch_scope`: the run's ranges of every topic)."""
    path = settings.table_path("raw", "pin")
    raw_pin = delta.read_table(spark, path)
    cleaned = files_scanned(latest_cleaned("pin", events_in(raw_pin, ranges)))
    trends = files_scanned(REALTIME_TABLES["category_trends"].of_batch(
        spark, LakeResource.from_settings(settings), raw_pin, events_in(raw_pin, ranges)))
    for what, scanned in (("cleaned/pin merge source", cleaned), ("category_trends batch query", trends)):
        require_same(f"tables the {what} read, besides raw/pin", set(scanned) - {path}, set())
    return cleaned.get(path, 0), trends.get(path, 0)


def measure_window(side: str, spark, settings: Settings, env: dict, rate: float, seconds: int,
                   timeout_s: float) -> dict:
    """One window posted into this workspace under the daemon: its latencies, its runs and their profiles."""
    progress(f"history: {side} lake, daemon at {rate * 3:,.0f} events/s for {seconds} s")
    posted = daemon_latencies(spark, settings, env, rate, seconds, timeout_s)  # one latency per pin event of the window
    latencies = posted.latencies
    runs = window_runs(settings, env, posted.since, len(latencies))
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    window = {"latencies": latencies, "runs": runs, "profiles": [run_profile(instance, run) for run in runs],
              "server_cpu_s": posted.server_cpu_s}
    progress(f"history: {side} lake window: {len(runs)} runs, median {median_run_s(runs):.1f} s, "
             f"p50 {percentiles(latencies)['p50']:.1f} s")
    return window


def median_run_s(runs: list) -> float:
    return statistics.median(r.end_time - r.start_time for r in runs)


def summarize_side(side: str, spark, settings: Settings, windows: list[dict]) -> dict:
    """A side's figures over all of its windows: run times, latencies, per-part profile, and the raw/pin files
    that a sample of its runs' merges open (measured afterwards on the final lake); each window's median run
    and p50 beside them."""
    runs = [run for w in windows for run in w["runs"]]
    latencies = sorted(latency for w in windows for latency in w["latencies"])
    files = [raw_files_read(spark, settings, ranges_of(run.dagster_run.run_config))
             for run in evenly_spaced(runs, SAMPLED_RUNS)]
    profile = median_profile([p for w in windows for p in w["profiles"]])
    figures = {
        **{f"{side}_{k}_s": v for k, v in percentiles(latencies).items()},
        f"{side}_median_run_s": median_run_s(runs),
        **{f"{side}_window_{i}_{what}_s": value for i, w in enumerate(windows, 1)
           for what, value in (("median_run", median_run_s(w["runs"])), ("p50", percentiles(w["latencies"])["p50"]))},
        f"{side}_cleaned_pin_raw_files_read": statistics.median(c for c, _ in files),
        f"{side}_category_trends_raw_files_read": statistics.median(t for _, t in files),
        f"{side}_raw_pin_data_files": spark.sql(
            f"DESCRIBE DETAIL {delta.sql_path(settings.table_path('raw', 'pin'))}").first()["numFiles"],
        **{f"{side}_{part}_s": seconds for part, seconds in profile.items()},
    }
    if None not in (cpu := [w["server_cpu_s"] for w in windows]):  # the daemons' runs used `make up`'s server
        figures[f"{side}_server_cpu_per_run_s"] = sum(cpu) / len(runs)
    cpu_text = "" if None in cpu else f", Connect server CPU per run {figures[f'{side}_server_cpu_per_run_s']:.1f} s"
    progress(f"history: {side} lake: {len(runs)} runs in {len(windows)} windows, median "
             f"{figures[f'{side}_median_run_s']:.1f} s, p50 {figures[f'{side}_p50_s']:.1f} s, raw/pin files read per "
             f"merge {figures[f'{side}_cleaned_pin_raw_files_read']:g} of {figures[f'{side}_raw_pin_data_files']:,}"
             f"{cpu_text}; median seconds per part: {', '.join(f'{part} {seconds:.1f}' for part, seconds in profile.items())}")
    return {"figures": figures, "runs": len(runs), "pin_events": len(latencies)}


def run(history_posts: int, rate: float, seconds: int, max_records_per_run: int, windows_per_side: int,
        timeout_s: float) -> list[Comparison]:
    """(a) the history lake, (b) a fresh one, then Structured Streaming on (a)'s topics: three comparisons."""
    spark_remote = os.environ.pop("SPARK_REMOTE", None)  # for the daemons; this process stays classic
    settings, env = workspace(max_records_per_run, spark_remote)
    spark = classic_session(settings)
    history_parameters = ingest_history(spark, settings, env, history_posts, timeout_s)
    sides = {"history": (settings, env), "fresh": workspace(max_records_per_run, spark_remote)}
    windows = {side: [] for side in sides}
    for side in window_order(windows_per_side):
        windows[side].append(measure_window(side, spark, *sides[side], rate, seconds, timeout_s))
    history, fresh = (summarize_side(side, spark, sides[side][0], windows[side]) for side in ("history", "fresh"))
    progress("history: Structured Streaming (1 s trigger) drains the history topics, then the same load")
    other = structured_streaming("latency", settings, max_records_per_run, "--rate", str(rate), "--seconds", str(seconds),
                                 "--timeout", str(timeout_s), "--history")
    progress(f"history: Structured Streaming drained the history in {other['history_drain_s']:.1f} s, "
             f"p50 {other['p50']:.1f} s")
    require_same("Spark Connect sessions opened in the benchmark process", is_remote(), False)
    return comparisons(history, fresh, other, {
        "history_posts": history_posts, "events_per_s": round(rate * 3), "seconds": seconds,
        "max_records_per_run": max_records_per_run, "windows_per_side": windows_per_side, **history_parameters,
        "window_runs_history": history["runs"], "window_runs_fresh": fresh["runs"]})


def comparisons(history: dict, fresh: dict, other: dict, parameters: dict) -> list[Comparison]:
    h, f = history["figures"], fresh["figures"]
    files = {k: v for k, v in {**h, **f}.items() if "files" in k}
    cpu = {k: v for k, v in {**h, **f}.items() if k.endswith("_server_cpu_per_run_s")}  # with `make up`'s server only
    parts = {k: v for k, v in {**h, **f}.items() if k.removeprefix("history_").removeprefix("fresh_").startswith(PARTS)}
    per_window = {what: {k: v for k, v in {**h, **f}.items() if "_window_" in k and k.endswith(what)}
                  for what in ("median_run_s", "p50_s")}
    checked = ("the window's runs all succeeded and named exactly its pin offsets; every pin event of the window "
               "(history excluded) became visible in cleaned/pin on every side")
    return [
        Comparison("history_run_time", "micro-batch run time: lake with history vs fresh lake (median, s)",
                   {"history_median_run_s": h["history_median_run_s"], "fresh_median_run_s": f["fresh_median_run_s"],
                    **per_window["median_run_s"], **files, **parts, **cpu}, f["fresh_median_run_s"] / h["history_median_run_s"],
                   1 / 1.15,
                   "history median run time at most 1.15× the fresh lake's, same run", "s", parameters, checked),
        Comparison("history_latency", "latency produce -> cleaned/pin: lake with history vs fresh lake (p50, s)",
                   {**{k: v for k, v in {**h, **f}.items() if k.endswith(("p50_s", "p95_s", "p99_s")) and "_window_" not in k},
                    **per_window["p50_s"], **files},
                   f["fresh_p50_s"] / h["history_p50_s"], 1 / 1.15, "history p50 at most 1.15× the fresh lake's",
                   "s", parameters, checked),
        Comparison("history_vs_structured_streaming",
                   "latency produce -> cleaned/pin with history: daemon vs Structured Streaming (p50, s)",
                   {**{k: v for k, v in h.items() if k.endswith(("p50_s", "p95_s", "p99_s")) and "_window_" not in k},
                    **{f"structured_streaming_{k}_s": other[k] for k in ("p50", "p95", "p99")}, **files},
                   other["p50"] / h["history_p50_s"], 2.0,
                   "daemon p50 with history at most half of Structured Streaming's", "s", parameters, checked),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.history", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history-posts", type=int, default=100_000, help="posts of history (3 events each)")
    parser.add_argument("--rate", type=float, default=333, help="posts per second in the window (3 events each)")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--max-records-per-run", type=int, default=Settings().max_records_per_run)
    parser.add_argument("--windows-per-side", type=int, choices=(1, 2), default=2,
                        help="windows measured on each lake (2: fresh, history, history, fresh; 1: fresh, history)")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--json", action="store_true", help="print the comparisons as one JSON line (python -m benchmarks)")
    parser.add_argument("--discard", action="store_true", help="delete the topics and folders after success")
    args = parser.parse_args()
    report_from_process(run(args.history_posts, args.rate, args.seconds, args.max_records_per_run,
                            args.windows_per_side, args.timeout),
                        args.json, args.discard)

if __name__ == "__main__":
    main()
