"""batch_job vs DuckDB: raw events -> cleaned tables -> the nine aggregated tables, from the same raw data.

The raw tables are built first, by the project's ingestion from Kafka, and are not timed. Then
`batch_job` runs on them (its raw catch-up finds nothing new; it rebuilds cleaned from all of raw and
the nine tables, with their checks), and DuckDB does the same from the Parquet files of the same raw
Delta tables: the cleaning rules and the nine questions in SQL (`benchmarks.duckdb_reference`).
The nine tables must be equal, and the cleaned tables the same size, before a time is reported.
"""

from __future__ import annotations

import time

import dagster as dg
import duckdb

from benchmarks.common import Comparison, fresh_workspace, post, progress, require_same, require_same_rows
from benchmarks.duckdb_reference import clean_raw, duckdb_answers
from pinterest_dagster.definitions import build_definitions
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import ingest_ranges, plan_catch_up
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import TOPIC_KINDS, Settings
from pinterest_dagster.transforms.aggregate import AGGREGATES

TARGET = 1 / 3  # batch_job no slower than 3x DuckDB
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def build_raw(settings: Settings, env: dict, posts: int, spark) -> None:
    """Post `posts` random posts (one event per topic each) and ingest them into raw/*."""
    post(env, "--posts", str(posts), "--rate", "0", "--seed", "11")
    kafka, lake = KafkaResource.from_settings(settings), LakeResource(root=settings.lake_root)
    ingest_ranges(spark, lake, kafka, plan_catch_up(spark, lake, kafka))


def run_batch_job(settings: Settings) -> float:
    started = time.perf_counter()
    result = build_definitions(settings).resolve_job_def("batch_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), run_config=QUIET_LOGS, raise_on_error=False)
    elapsed = time.perf_counter() - started
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    if not result.success or failed:
        raise RuntimeError(f"batch_job did not succeed (failed checks: {failed or 'none'})")
    return elapsed


def active_parquet_files(spark, settings: Settings) -> dict[str, list[str]]:
    """The files of each raw table's current version (removed files are not listed), as local paths."""
    return {kind: [f.removeprefix("file:") for f in delta.read_table(spark, settings.table_path("raw", kind)).inputFiles()]
            for kind in TOPIC_KINDS}


def run_duckdb(raw_files: dict[str, list[str]]) -> tuple[float, dict[str, int], dict[str, list[tuple]]]:
    started = time.perf_counter()
    connection = duckdb.connect()
    cleaned_counts = clean_raw(connection, raw_files)
    answers = duckdb_answers(connection)
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed, cleaned_counts, answers


def check_same_tables(spark, settings: Settings, cleaned_counts: dict[str, int], answers: dict[str, list[tuple]]) -> None:
    for kind in TOPIC_KINDS:
        spark_count = delta.read_table(spark, settings.table_path("cleaned", kind)).count()
        require_same(f"cleaned/{kind} rows (batch_job, DuckDB)", spark_count, cleaned_counts[kind])
    for name in AGGREGATES:
        rows = [tuple(row) for row in delta.read_table(spark, settings.table_path("aggregated", name)).collect()]
        if not rows:
            raise AssertionError(f"aggregated/{name} is empty: too little data to compare")
        require_same_rows(f"aggregated/{name} (batch_job, DuckDB)", rows, answers[name])


def run(posts: int) -> list[Comparison]:
    settings, env = fresh_workspace()
    spark = build_spark_session(settings)
    progress(f"batch: posting {posts:,} posts and ingesting them into raw/* ({settings.lake_root})")
    build_raw(settings, env, posts, spark)
    raw_rows = {kind: delta.read_table(spark, settings.table_path("raw", kind)).count() for kind in TOPIC_KINDS}
    require_same("raw rows per topic", raw_rows, dict.fromkeys(TOPIC_KINDS, posts))
    progress("batch: running batch_job (raw catch-up, cleaned, nine aggregated tables, checks)")
    dagster_s = run_batch_job(settings)
    raw_files = active_parquet_files(spark, settings)
    progress(f"batch: batch_job took {dagster_s:.1f} s; DuckDB on the same {sum(map(len, raw_files.values()))} raw files")
    duckdb_s, cleaned_counts, answers = run_duckdb(raw_files)
    check_same_tables(spark, settings, cleaned_counts, answers)
    progress(f"batch: DuckDB took {duckdb_s:.1f} s; the nine tables are equal")
    return [Comparison(
        name="batch",
        question="batch_job vs DuckDB SQL, raw -> cleaned -> nine tables (seconds)",
        figures={"batch_job_s": dagster_s, "duckdb_s": duckdb_s, "batch_over_duckdb": dagster_s / duckdb_s},
        ratio=duckdb_s / dagster_s, target=TARGET, target_text="batch_job no slower than 3× DuckDB", unit="s",
        parameters={"events_per_topic": posts, "spark": "Spark Connect" if settings.spark_remote else "in-process"},
        checked="nine aggregated tables equal, cleaned row counts equal",
    )]
