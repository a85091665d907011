"""`python -m pinterest_dagster.demo [--stream SECONDS]`: the end of `make demo`.

With `--stream`, first the streaming pipeline: the Dagster daemon runs the Kafka sensor while the
emulator posts for SECONDS, and the realtime tables are printed as they change. Then the batch:
`batch_job` (raw catch-up -> cleaned and realtime -> aggregated) on the Dagster instance in DAGSTER_HOME, so
every run is visible in the UI afterwards, and the nine aggregated tables.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import dagster as dg

from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import lag
from pinterest_dagster.lib.kafka import events_per_topic
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import REPO_ROOT, Settings
from pinterest_dagster.transforms.aggregate import AGGREGATES

VENV_BIN = REPO_ROOT / ".venv" / "bin"

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def print_topic_counts(settings: Settings) -> None:
    print(f"events per topic on {settings.kafka_bootstrap_servers}:")
    for topic, count in events_per_topic(settings).items():
        print(f"  {topic:<24} {count:>10,}")


def run_batch_job(defs: dg.Definitions) -> dg.ExecuteInProcessResult:
    started = time.monotonic()
    print("running batch_job (raw catch-up -> cleaned and realtime -> aggregated, with checks)...", flush=True)
    result = defs.resolve_job_def("batch_job").execute_in_process(
        instance=dg.DagsterInstance.get(), run_config=QUIET_LOGS, raise_on_error=False
    )
    failed_checks = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    status = "succeeded" if result.success else "FAILED"
    print(f"batch_job {status} in {time.monotonic() - started:.1f} s (run {result.run_id})")
    if failed_checks:
        print(f"failed checks: {', '.join(failed_checks)}")
    return result


def print_aggregated_tables(settings: Settings, rows: int = 15) -> None:
    spark = build_spark_session(settings)
    for name in AGGREGATES:
        table = delta.read_table(spark, settings.table_path("aggregated", name))
        print(f"\naggregated/{name} ({table.count():,} rows)")
        table.show(rows, truncate=False)


def print_realtime(spark, settings: Settings) -> None:
    path = settings.table_path("realtime", "poster_popularity")
    if not delta.table_exists(spark, path):
        print("  (no micro-batch has finished yet)")
        return
    print("  most active posters (realtime/poster_popularity):")
    delta.read_table(spark, path).orderBy("pin_count", ascending=False).show(5, truncate=False)
    print("  latest category trends (realtime/category_trends):")
    trends = delta.read_table(spark, settings.table_path("realtime", "category_trends"))
    trends.orderBy("window_start", "pin_count", ascending=False).show(5, truncate=False)


def stream(settings: Settings, seconds: int, rate: int) -> bool:
    """Run the daemon (sensor + micro-batches) while the emulator posts; print realtime tables as they change."""
    spark = build_spark_session(settings)
    logs = open(REPO_ROOT / ".local" / "logs" / "demo-daemon.log", "ab")
    daemon = subprocess.Popen([str(VENV_BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                              cwd=REPO_ROOT, stdout=logs, stderr=subprocess.STDOUT)
    print(f"streaming: dagster-daemon started (log .local/logs/demo-daemon.log); posting {rate} posts/s for {seconds} s")
    emulator = subprocess.Popen([sys.executable, "-m", "emulator", "post", "--duration", str(seconds),
                                 "--rate", str(rate), "--quiet"], cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + seconds + 300
        while time.monotonic() < deadline:
            time.sleep(15)
            behind = lag(spark, LakeResource.from_settings(settings), KafkaResource.from_settings(settings))
            print(f"\n[{time.strftime('%H:%M:%S')}] events not yet in the lake: {behind:,}")
            print_realtime(spark, settings)
            if emulator.poll() is not None and behind == 0:
                print("streaming: the lake has caught up with Kafka")
                return True
        print("streaming: still behind after the time allowed; the batch job will catch up")
        return False
    finally:
        emulator.wait()
        daemon.terminate()
        daemon.wait(timeout=60)
        logs.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinterest_dagster.demo", description=__doc__)
    parser.add_argument("--stream", type=int, default=0, metavar="SECONDS", help="stream for this long first")
    parser.add_argument("--rate", type=int, default=100, help="posts per second while streaming (default 100)")
    args = parser.parse_args(argv)
    if not os.environ.get("DAGSTER_HOME"):
        parser.error("DAGSTER_HOME must be set (make demo sets it to .local/dagster)")
    from pinterest_dagster.definitions import defs

    settings = Settings.from_env()
    if args.stream:
        stream(settings, args.stream, args.rate)
    print_topic_counts(settings)
    if not run_batch_job(defs).success:
        return 1
    print_aggregated_tables(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
