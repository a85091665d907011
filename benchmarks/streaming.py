"""Streaming throughput and latency of the real pipeline: dagster-daemon, sensor, micro-batch runs.

    .venv/bin/python -m benchmarks.streaming throughput --posts 100000
    .venv/bin/python -m benchmarks.streaming latency --rate 333 --seconds 60

`throughput` drains a backlog (3 events per post) from Kafka into the cleaned tables and reports
events/s. `latency` posts at a fixed rate while the daemon runs and reports, per pin event, the time
from its Kafka timestamp to the commit that made it queryable in cleaned/pin (p50/p95/p99).
Each run uses fresh topics, a fresh lake and a fresh DAGSTER_HOME under .local/bench/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid

import dagster as dg
from pyspark.sql import functions as F

from pinterest_dagster.defs.streaming.sensors import streaming_runs_in_flight
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import lag, log_path
from pinterest_dagster.lib.kafka import ensure_topics, events_per_topic
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import LOCAL_DIR, REPO_ROOT, Settings


CLEANED_PIN = dg.AssetKey(["cleaned", "pin"])


def prepare(max_records_per_run: int) -> tuple[Settings, dict]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    base = LOCAL_DIR / "bench" / name
    home = base / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "infra/dagster/dagster.yaml", home / "dagster.yaml")
    settings = Settings(**{**Settings.from_env().__dict__, "topic_prefix": name, "lake_root": str(base / "lake")})
    env = {**os.environ, "DAGSTER_HOME": str(home), "PINTEREST_TOPIC_PREFIX": name,
           "PINTEREST_LAKE_ROOT": settings.lake_root, "PINTEREST_MAX_RECORDS_PER_RUN": str(max_records_per_run)}
    ensure_topics(settings)
    return settings, env


def post(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "emulator", "post", "--quiet", *args], cwd=REPO_ROOT, env=env, check=True)


def start_daemon(env: dict) -> subprocess.Popen:
    log = open(os.path.join(env["DAGSTER_HOME"], "daemon.log"), "ab")
    return subprocess.Popen([str(REPO_ROOT / ".venv/bin/dagster-daemon"), "run", "-w", "workspace.yaml"],
                            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_caught_up(spark, settings: Settings, timeout_s: float) -> float:
    lake = LakeResource(root=settings.lake_root)
    kafka = KafkaResource.from_settings(settings)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if lag(spark, lake, kafka) == 0:
            return time.monotonic()
        time.sleep(2)
    raise SystemExit(f"not caught up after {timeout_s:.0f} s")


def wait_runs_finished(home: str, timeout_s: float = 600) -> None:
    instance = dg.DagsterInstance.from_config(home)
    deadline = time.monotonic() + timeout_s
    while streaming_runs_in_flight(instance) and time.monotonic() < deadline:
        time.sleep(2)


def throughput(args) -> None:
    settings, env = prepare(args.max_records_per_run)
    post(env, "--posts", str(args.posts), "--rate", "0")
    events = sum(events_per_topic(settings).values())
    spark = build_spark_session(settings)
    started = time.monotonic()
    daemon = start_daemon(env)
    try:
        caught_up = wait_caught_up(spark, settings, args.timeout)
        wait_runs_finished(env["DAGSTER_HOME"])
        finished = time.monotonic()
    finally:
        daemon.terminate()
        daemon.wait()
    runs = dg.DagsterInstance.from_config(env["DAGSTER_HOME"]).get_runs()
    print(f"drained {events:,} events (3 topics) in {finished - started:.1f} s with {len(runs)} runs "
          f"(raw caught up after {caught_up - started:.1f} s): {events / (finished - started):,.0f} events/s "
          f"into cleaned (max {args.max_records_per_run:,} records per run)")


def latency(args) -> None:
    settings, env = prepare(args.max_records_per_run)
    spark = build_spark_session(settings)
    daemon = start_daemon(env)
    try:
        post(env, "--duration", str(args.seconds), "--rate", str(args.rate))
        wait_caught_up(spark, settings, args.timeout)
        wait_runs_finished(env["DAGSTER_HOME"])
    finally:
        daemon.terminate()
        daemon.wait()
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    queryable = cleaned_pin_commit_times(instance)
    log = delta.read_table(spark, log_path(LakeResource(root=settings.lake_root))).where(
        F.col("topic") == settings.topic("pin"))
    raw = delta.read_table(spark, settings.table_path("raw", "pin")).select("_partition", "_offset", "_kafka_timestamp")
    joined = raw.join(log, (raw._partition == log.partition) & (raw._offset >= log.start_offset)
                      & (raw._offset < log.end_offset)).select("run_id", F.col("_kafka_timestamp").cast("double").alias("tsd"))
    latencies = sorted(queryable[r["run_id"]] - r["tsd"] for r in joined.collect() if r["run_id"] in queryable)
    q = statistics.quantiles(latencies, n=100)
    print(f"{len(latencies):,} pin events at {args.rate * 3:,} events/s for {args.seconds} s: produce -> cleaned/pin "
          f"latency p50 {q[49]:.1f} s, p95 {q[94]:.1f} s, p99 {q[98]:.1f} s")


def cleaned_pin_commit_times(instance: dg.DagsterInstance) -> dict[str, float]:
    """Per run group (a run and its retries): when its batch became queryable in cleaned/pin, i.e. the
    time of the first cleaned/pin materialization, which is logged right after the Delta commit."""
    committed: dict[str, float] = {}
    for record in instance.get_run_records():
        run = record.dagster_run
        group = run.root_run_id or run.run_id
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            if entry.dagster_event.asset_key == CLEANED_PIN:
                committed[group] = min(committed.get(group, entry.timestamp), entry.timestamp)
    return committed


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-records-per-run", type=int, default=Settings().max_records_per_run)
    parser.add_argument("--timeout", type=float, default=1800)
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("throughput")
    t.add_argument("--posts", type=int, default=100_000)
    lat = commands.add_parser("latency")
    lat.add_argument("--rate", type=int, default=333, help="posts per second (3 events each)")
    lat.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    {"throughput": throughput, "latency": latency}[args.command](args)


if __name__ == "__main__":
    main()
