"""The batch pipeline vs DuckDB, both ways, on the same data (issue: "the daily batch is incremental").

The raw tables are built first, by the project's ingestion from Kafka, and are not timed. Then:
- **rebuild**: `rebuild_job` (its raw catch-up finds nothing new; it rebuilds cleaned and realtime from all
  of raw and the nine tables, with their checks) against DuckDB doing the same from the Parquet files of
  the same raw Delta tables: the cleaning rules and the nine questions in SQL (`benchmarks.duckdb_reference`).
- **daily**: `batch_job` on the lake the rebuild left, as it finds the lake when streaming keeps cleaned
  (nothing new to ingest or merge; the nine tables from cleaned, with the checks), against DuckDB answering
  the nine questions from the Parquet files of the same cleaned Delta tables.
The nine tables must be equal, and the cleaned tables the same size, before a time is reported.
"""

from __future__ import annotations

import time

import dagster as dg
import duckdb

from benchmarks.common import Comparison, fresh_workspace, post, progress, require_same, require_same_rows
from benchmarks.duckdb_reference import clean_raw, duckdb_answers, load_cleaned
from pinterest_dagster.definitions import build_definitions
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import ingest_ranges, plan_catch_up
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import TOPIC_KINDS, Settings
from pinterest_dagster.transforms.aggregate import AGGREGATES
from pinterest_dagster.transforms.dedupe import EVENT_LINEAGE_COLUMNS

REBUILD_TARGET = 1 / 3  # rebuild_job no slower than 3x DuckDB
DAILY_TARGET = 0.5  # batch_job at least 0.5x DuckDB doing the same work (from cleaned)
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def build_raw(settings: Settings, env: dict, posts: int, spark) -> None:
    """Post `posts` random posts (one event per topic each) and ingest them into raw/*."""
    post(env, "--posts", str(posts), "--rate", "0", "--seed", "11")
    kafka, lake = KafkaResource.from_settings(settings), LakeResource(root=settings.lake_root)
    ingest_ranges(spark, lake, kafka, plan_catch_up(spark, lake, kafka))


def run_job(settings: Settings, name: str) -> float:
    started = time.perf_counter()
    result = build_definitions(settings).resolve_job_def(name).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), run_config=QUIET_LOGS, raise_on_error=False)
    elapsed = time.perf_counter() - started
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    if not result.success or failed:
        raise RuntimeError(f"{name} did not succeed (failed checks: {failed or 'none'})")
    return elapsed


def active_parquet_files(spark, settings: Settings, layer: str) -> dict[str, list[str]]:
    """The files of each table's current version in `layer` (removed files are not listed), as local paths."""
    return {kind: [f.removeprefix("file:") for f in delta.read_table(spark, settings.table_path(layer, kind)).inputFiles()]
            for kind in TOPIC_KINDS}


def run_duckdb(load) -> tuple[float, dict[str, int], dict[str, list[tuple]]]:
    """Times `load(connection)` (which registers pin, geo and users, and returns their row counts) and the
    nine questions on them."""
    started = time.perf_counter()
    connection = duckdb.connect()
    cleaned_counts = load(connection)
    answers = duckdb_answers(connection)
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed, cleaned_counts, answers


def check_same_tables(spark, settings: Settings, job: str, cleaned_counts: dict[str, int],
                      answers: dict[str, list[tuple]]) -> None:
    for kind in TOPIC_KINDS:
        spark_count = delta.read_table(spark, settings.table_path("cleaned", kind)).count()
        require_same(f"cleaned/{kind} rows ({job}, DuckDB)", spark_count, cleaned_counts[kind])
    for name in AGGREGATES:
        rows = [tuple(row) for row in delta.read_table(spark, settings.table_path("aggregated", name)).collect()]
        if not rows:
            raise AssertionError(f"aggregated/{name} is empty: too little data to compare")
        require_same_rows(f"aggregated/{name} ({job}, DuckDB)", rows, answers[name])


def against_duckdb(name: str, title: str, job: str, work: str, job_s: float, duckdb_s: float, target: float,
                   target_text: str, parameters: dict) -> Comparison:
    short = job.removesuffix("_job")
    return Comparison(
        name=name, question=f"{title} vs DuckDB SQL, {work} (seconds)",
        figures={f"{job}_s": job_s, "duckdb_s": duckdb_s, f"{short}_over_duckdb": job_s / duckdb_s},
        ratio=duckdb_s / job_s, target=target, target_text=target_text, unit="s", parameters=parameters,
        checked="nine aggregated tables equal, cleaned row counts equal",
    )


def run(posts: int) -> list[Comparison]:
    settings, env = fresh_workspace()
    spark = build_spark_session(settings)
    progress(f"batch: posting {posts:,} posts and ingesting them into raw/* ({settings.lake_root})")
    build_raw(settings, env, posts, spark)
    raw_rows = {kind: delta.read_table(spark, settings.table_path("raw", kind)).count() for kind in TOPIC_KINDS}
    require_same("raw rows per topic", raw_rows, dict.fromkeys(TOPIC_KINDS, posts))
    parameters = {"events_per_topic": posts, "spark": "Spark Connect" if settings.spark_remote else "in-process"}

    progress("batch: running rebuild_job (raw catch-up, cleaned and realtime from all of raw, nine tables, checks)")
    rebuild_s = run_job(settings, "rebuild_job")
    spark = build_spark_session(settings)  # a run releases its Spark Connect session when it ends
    raw_files = active_parquet_files(spark, settings, "raw")
    progress(f"batch: rebuild_job took {rebuild_s:.1f} s; DuckDB on the same {sum(map(len, raw_files.values()))} raw files")
    duckdb_raw_s, cleaned_counts, answers = run_duckdb(lambda connection: clean_raw(connection, raw_files))
    check_same_tables(spark, settings, "rebuild_job", cleaned_counts, answers)
    progress(f"batch: DuckDB took {duckdb_raw_s:.1f} s from raw; the nine tables are equal")

    progress("batch: running batch_job, the daily batch (nothing new to ingest or merge; nine tables from cleaned, checks)")
    daily_s = run_job(settings, "batch_job")
    spark = build_spark_session(settings)
    cleaned_files = active_parquet_files(spark, settings, "cleaned")
    duckdb_cleaned_s, cleaned_counts, answers = run_duckdb(
        lambda connection: load_cleaned(connection, cleaned_files, EVENT_LINEAGE_COLUMNS))
    check_same_tables(spark, settings, "batch_job", cleaned_counts, answers)
    progress(f"batch: batch_job took {daily_s:.1f} s, DuckDB {duckdb_cleaned_s:.1f} s from cleaned; the nine tables are equal")
    return [
        against_duckdb("batch", "daily batch_job", "batch_job", "cleaned -> nine tables", daily_s, duckdb_cleaned_s,
                       DAILY_TARGET, "batch_job at least 0.5× DuckDB", parameters),
        against_duckdb("rebuild", "rebuild_job", "rebuild_job", "raw -> cleaned -> nine tables", rebuild_s, duckdb_raw_s,
                       REBUILD_TARGET, "rebuild_job no slower than 3× DuckDB", parameters),
    ]
