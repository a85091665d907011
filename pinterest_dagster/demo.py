"""`python -m pinterest_dagster.demo`: the end of `make demo`, after the emulator has posted events.

Shows the events per topic, runs `batch_job` (raw catch-up -> cleaned -> aggregated) on the Dagster
instance in DAGSTER_HOME, so the run is visible in the UI afterwards, and prints the nine tables.
"""

from __future__ import annotations

import sys
import time

import dagster as dg

from pinterest_dagster.lib import delta
from pinterest_dagster.lib.kafka import end_offsets
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import Settings
from pinterest_dagster.transforms.aggregate import AGGREGATES

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def topic_counts(settings: Settings) -> dict[str, int]:
    """Events in each topic (sum of end offsets over its partitions; topics are never compacted)."""
    counts = dict.fromkeys(settings.topics.values(), 0)
    for tp, offset in end_offsets(settings, list(counts)).items():
        counts[tp.topic] += offset
    return counts


def print_topic_counts(settings: Settings) -> None:
    print(f"events per topic on {settings.kafka_bootstrap_servers}:")
    for topic, count in topic_counts(settings).items():
        print(f"  {topic:<24} {count:>10,}")


def run_batch_job(defs: dg.Definitions) -> dg.ExecuteInProcessResult:
    started = time.monotonic()
    print("running batch_job (raw catch-up -> cleaned -> aggregated, with checks)...", flush=True)
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


def main() -> int:
    from pinterest_dagster.definitions import defs

    settings = Settings.from_env()
    print_topic_counts(settings)
    if not run_batch_job(defs).success:
        return 1
    print_aggregated_tables(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
