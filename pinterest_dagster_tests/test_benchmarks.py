"""The pure parts of the benchmarks: result comparison, the Markdown report, and DuckDB's cleaning SQL
giving what the Spark cleaning gives (the batch benchmark times the two against each other)."""

from __future__ import annotations

import statistics
from datetime import datetime, timezone

import dagster as dg
import duckdb
import pytest
from dagster._core.test_utils import create_run_for_test
from pyspark.sql import functions as F

from benchmarks.common import Comparison, ResultMismatch, local_connect_server_cpu_s, require_same_rows
from benchmarks.duckdb_reference import clean_raw
from benchmarks.first_minutes import split_p50
from benchmarks.history import window_order
from benchmarks.load import source_posts
from benchmarks.dagster_storage import live_bytes, live_bytes_by_table
from benchmarks.report import markdown_table, replace_readme_block
from benchmarks.scan_metrics import files_scanned
from benchmarks.soak import (
    files_bytes, files_per_partition, levels_off, per_minute, stays_per_micro_batches, storage_bytes, storage_growth, what_stays,
)
from benchmarks.soak import comparisons as soak_comparisons
from pinterest_dagster.defs.clean.assets import latest_cleaned
from pinterest_dagster.lib.streaming_runs import STREAMING_TAGS
from pinterest_dagster.settings import Settings
from pinterest_dagster.transforms import CLEANED_COLUMNS
from pinterest_dagster.transforms.parse import SOURCE_COLUMNS


def test_the_local_connect_servers_cpu_is_read_only_for_make_ups_server():
    assert local_connect_server_cpu_s(None) is None  # an in-process session
    assert local_connect_server_cpu_s("sc://spark.example.com:15002") is None  # a server elsewhere
    assert local_connect_server_cpu_s("sc://127.0.0.1:15003") is None  # the spark-cluster tests' server
    used = local_connect_server_cpu_s("sc://127.0.0.1:15002")  # `make up` (and so `make test`) starts it
    assert used is not None and used > 0
    assert local_connect_server_cpu_s("sc://localhost:15002") >= used


def test_same_rows_in_any_order_with_floats_within_rounding():
    require_same_rows("t", [("b", 2), ("a", 1.0000000000000002)], [("a", 1.0), ("b", 2)])


@pytest.mark.parametrize("actual", [[("a", 1.0)], [("a", 1.1), ("b", 2)], [("a", 1.0), ("c", 2)]])
def test_different_rows_fail_loudly(actual):
    with pytest.raises(ResultMismatch, match="t:"):
        require_same_rows("t", actual, [("a", 1.0), ("b", 2)])


def comparison(ratio: float) -> Comparison:
    return Comparison("x", "x vs y", {"x_s": 12.5, "y_s": 1234.0}, ratio, 0.5, "x ≥ half of y", "s", {"events": 30000})


HOST = {"cores": 2, "memory_gib": 23.4, "load_average_at_start": (1.0, 1.0, 1.0)}  # the part of report.machine() the table shows


def test_markdown_table_says_met_or_not_met_with_the_ratio():
    table = markdown_table([comparison(0.75), comparison(0.25)], "quick", datetime(2026, 1, 2, tzinfo=timezone.utc), HOST)
    rows = [line for line in table.splitlines() if line.startswith("| x vs y")]
    assert "| 0.75 |" in rows[0] and rows[0].endswith("| met |")
    assert "| 0.25 |" in rows[1] and rows[1].endswith("| **not met** |")
    assert "x_s 12.50, y_s 1,234" in rows[0] and "events 30,000" in rows[0]


def test_a_figure_not_measured_is_a_dash_in_the_table():
    # A 2-minute soak (make bench-quick SOAK=1) can see one housekeeping run that deletes runs, not two: no growth
    # between clean-ups. CI's bench step once failed formatting that None.
    not_measured = Comparison("x", "x vs y", {"growth": None, "y_s": 3.0, "table": "raw/pin"}, 1.0, 1.0, "t", "bytes", {})
    row = markdown_table([not_measured], "quick", datetime(2026, 1, 2, tzinfo=timezone.utc), HOST).splitlines()[-1]
    assert "growth -, y_s 3.00, table raw/pin" in row  # a figure that is not a number is shown as it is


def test_readme_block_is_the_only_part_rewritten(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench:start -->\nold\n<!-- bench:end -->\nrest\n")
    replace_readme_block(readme, "new table\n")
    assert readme.read_text() == "intro\n<!-- bench:start -->\nnew table\n<!-- bench:end -->\nrest\n"


def raw(kind: str, rows: list[tuple]) -> list[dict]:
    """Raw events: source columns as strings, then the Kafka timestamp (s) and offset."""
    return [dict(zip(SOURCE_COLUMNS[kind] + ["ts", "_offset"], row)) for row in rows]


RAW_EVENTS = {
    "pin": raw("pin", [
        ("1", "u1", "No Title Data Available", "Untitled", "User Info Error", "306k", "a,b", "image", "Image src error.",
         "1", "Local save in /data/travel", "travel", 10, 0),
        ("1", "u1", "newer", "d", "Ann", "1.5k", "a", "video", "src", "0", "Local save in /data/art", "art", 20, 1),
        ("2", "u2", "  ", "\u00a0", "Bob", "3M", "", "image", "s", "2", "/already/a/path", "diy-and-crafts", 5, 2),
        ("3", "u3", "t", "d", "Cy", "437", "x", "image", "s", "1", "Local save in ", "quotes", 5, 3),
        ("4", "u4", "t", "d", "Di", "1.1k", "x", "image", "s", "1", "Local save in /data/finance", "finance", 5, 4),
        ("5", "u5", "t", "d", "Ed", "lots", "x", "image", "s", "x", None, "finance", 5, 5),
        ("5", "u5", "t", "d", "Ed", "2m", "x", "image", "s", "0", None, "finance", 5, 6),
    ]),
    "geo": raw("geo", [
        ("1", "2020-08-28T03:52:47", "10.5", "20.25", "France", 1, 0),
        ("2", "2020-08-28 03:52:47", "95", "20", "  ", 1, 1),
        ("3", "2020-08-28T03:52:47.123", "-10", "200", "Chad", 1, 2),
        ("4", "2020-08-28T03:52:47+02:00", "1", "2", "Peru", 1, 3),
        ("4", "garbage", "1", "2", "Peru", 1, 2),
    ]),
    "user": raw("user", [
        ("1", "Ann", "Lee", "25", "2016-01-02T03:04:05", 1, 0),
        ("2", None, " Bo ", "51", "2019-12-31 23:59:59", 1, 1),
        ("3", "User Info Error", "", "x", "nope", 1, 2),
    ]),
}


@pytest.mark.spark
def test_duckdb_cleaning_sql_gives_the_cleaned_tables_spark_gives(spark, tmp_path):
    files, expected = {}, {}
    for kind, events in RAW_EVENTS.items():
        df = (spark.createDataFrame(events).withColumn("_kafka_timestamp", F.col("ts").cast("timestamp")).drop("ts")
              .withColumn("_partition", F.lit(0)))
        df.write.parquet(str(tmp_path / kind))
        files[kind] = [str(p) for p in (tmp_path / kind).glob("*.parquet")]
        cleaned = latest_cleaned(kind, df).select(*CLEANED_COLUMNS[kind])  # the contract columns, as readers take them
        timestamps = [f.name for f in cleaned.schema.fields if f.dataType.simpleString() == "timestamp"]
        expected[kind] = [tuple(r) for r in cleaned.select(
            *[F.col(c).cast("string").alias(c) if c in timestamps else c for c in cleaned.columns]).collect()]
    connection = duckdb.connect()
    counts = clean_raw(connection, files)
    for kind, rows in expected.items():
        table = "users" if kind == "user" else kind
        columns = ", ".join(f"CAST({c} AS VARCHAR)" if c in ("timestamp", "date_joined") else c
                            for c in connection.sql(f"SELECT * FROM {table}").columns)
        actual = connection.sql(f"SELECT {columns} FROM {table}").fetchall()
        assert counts[kind] == len(rows)
        assert sorted(actual, key=str) == sorted(rows, key=str), kind


@pytest.mark.spark
def test_files_scanned_counts_the_files_a_query_opens(spark, tmp_path):
    path = str(tmp_path / "table")
    for day in range(3):  # three partitions of one file each
        spark.range(10).select(F.lit(day).alias("day"), "id").coalesce(1).write.format("delta").mode("append") \
            .partitionBy("day").save(path)
    table = spark.read.format("delta").load(path)
    assert files_scanned(table) == {path: 3}
    assert files_scanned(table.where("day = 1").groupBy("id").count()) == {path: 1}


def test_the_window_runs_are_those_started_since_posting_began_in_start_order():
    from types import SimpleNamespace

    from benchmarks.history import runs_since

    records = [SimpleNamespace(name=name, start_time=start) for name, start in
               [("late", 30.0), ("history", 9.9), ("never started", None), ("first", 10.0)]]
    assert [r.name for r in runs_since(records, 10.0)] == ["first", "late"]


def test_a_sample_of_runs_keeps_the_first_and_last_spread_evenly():
    from benchmarks.history import evenly_spaced

    assert evenly_spaced(list(range(5)), 10) == [0, 1, 2, 3, 4]
    assert evenly_spaced(list(range(21)), 3) == [0, 10, 20]
    assert evenly_spaced(list(range(100)), 10) == [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]
    assert evenly_spaced(list(range(4)), 1) == [0]


def test_ranges_of_a_run_are_the_ones_its_config_names():
    from benchmarks.history import ranges_of
    from pinterest_dagster.lib.ingestion import OffsetRange
    from pinterest_dagster.lib.microbatch import run_config

    batch = [OffsetRange("t.pin", 1, 5, 9), OffsetRange("t.geo", 0, 0, 3)]
    assert ranges_of(run_config(batch)) == sorted(batch)


def test_a_run_profile_splits_a_real_run_into_launch_steps_merge_commits_and_teardown():
    """On a run of a two-step job executed by Dagster: the parts add up to the run, and the merge step's
    tables are timed from the step's start in the order they were committed."""
    import time

    import dagster as dg

    from benchmarks.history import median_profile, run_profile
    from pinterest_dagster.defs.merge.assets import MERGE_STEP

    @dg.asset(key=["raw", "pin"])
    def ingest():
        time.sleep(0.3)

    @dg.multi_asset(name=MERGE_STEP, specs=[dg.AssetSpec(["cleaned", "pin"], deps=[["raw", "pin"]]),
                                            dg.AssetSpec(["realtime", "trends"], deps=[["raw", "pin"]])])
    def merge():
        time.sleep(0.2)
        yield dg.MaterializeResult(asset_key=["cleaned", "pin"])
        time.sleep(0.4)
        yield dg.MaterializeResult(asset_key=["realtime", "trends"])

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([ingest, merge], instance=instance)
        [record] = instance.get_run_records(dg.RunsFilter(run_ids=[result.run_id]))
        profile = run_profile(instance, record)
    assert set(profile) == {"launch", "teardown", "step_raw__pin", f"step_{MERGE_STEP}", "merge_to_cleaned_pin",
                            "merge_to_realtime_trends"}
    assert profile["step_raw__pin"] >= 0.3 and profile[f"step_{MERGE_STEP}"] >= 0.6
    assert 0.2 <= profile["merge_to_cleaned_pin"] < profile["merge_to_realtime_trends"] - 0.3
    assert profile["merge_to_realtime_trends"] <= profile[f"step_{MERGE_STEP}"]
    steps = profile["step_raw__pin"] + profile[f"step_{MERGE_STEP}"]
    assert 0 <= profile["launch"] and 0 <= profile["teardown"]
    assert steps + profile["launch"] + profile["teardown"] <= record.end_time - record.start_time + 1e-6
    assert median_profile([{"a": 1.0, "b": 5.0}, {"a": 3.0}, {"a": 2.0, "b": 7.0}]) == {"a": 2.0, "b": 6.0}


def test_the_first_minutes_split_events_by_when_they_were_produced():
    events = [(t / 10, 20.0 + (t % 7)) for t in range(0, 600)] + [(60 + t / 10, 10.0 + (t % 5)) for t in range(0, 600)]
    first, later = split_p50(events + [(125.0, 99.0)], 60)  # produced after both windows: in neither
    assert first["p50"] == statistics.median(latency for t, latency in events if t < 60) == 23.0
    assert later["p50"] == statistics.median(latency for t, latency in events if t >= 60) == 12.0


def test_the_soak_averages_per_minute_and_compares_minutes_5_10_with_the_last_5():
    samples = [(m * 60 + s, 100.0 * (m < 3) + m) for m in range(20) for s in (0, 30)]  # a burst, then a slow climb
    series = per_minute(samples, 20)
    assert series[:4] == [100.0, 101.0, 102.0, 3.0] and len(series) == 20
    assert levels_off(series, 20) == (statistics.fmean(range(5, 10)), statistics.fmean(range(15, 20)))
    assert per_minute([(30, 1.0)], 3) == [1.0, None, None] and levels_off([1.0, None, None], 3) == (0.0, 1.0)


def test_the_soak_says_to_seed_the_source_database_before_it_starts_anything(tmp_path):
    settings = Settings(**{**Settings.from_env().__dict__, "source_db_url": f"sqlite:///{tmp_path / 'empty.db'}"})
    with pytest.raises(SystemExit, match="python -m emulator seed"):
        source_posts(settings)


def test_the_soak_counts_data_files_per_partition_directory():
    files = ["file:/l/raw/pin/_kafka_date=2026-12-01/_kafka_partition=0/a.parquet",
             "file:/l/raw/pin/_kafka_date=2026-12-01/_kafka_partition=0/b.parquet",
             "file:/l/raw/pin/_kafka_date=2026-12-01/_kafka_partition=1/c.parquet"]
    assert files_per_partition(files) == {"_kafka_date=2026-12-01/_kafka_partition=0": 2,
                                          "_kafka_date=2026-12-01/_kafka_partition=1": 1}
    assert files_per_partition(["s3a://b/cleaned/pin/x.parquet"] * 3) == {"(table)": 3}


def test_a_short_soak_reports_its_level_off_and_storage_figures_without_judging_them():
    result = {"lag_per_minute": [9.0, 5.0, 4.0], "batch_per_minute": [3.0, 2.0, 2.0], "micro_batches": 8,
              "lake": {"raw/pin": {"most_files_in_a_partition": 10, "data_files": 12, "delta_log_bytes": 100}},
              "after_housekeeping": [], "storage_before": 1_000, "storage_after": 300_000, "storage_left": 161_000,
              "queued_runs_left": 0, "storage_tables": {}, "maintenance_runs": 3, "housekeeping_runs": 2,
              "caught_up_after_posting_s": 20.0, "run_seconds_per_minute": [8.0, 9.5, 9.0],
              "routine_runs": [("maintenance_job", 1.0, 1.4), ("housekeeping_job", 1.0, None)]}
    short = {c.name: c for c in soak_comparisons(result, {"minutes": 3})}
    # What a rise of the lag is compared with: the micro-batches' run time and when the routine runs ran.
    assert short["soak_lag"].figures["micro_batch_run_seconds_per_minute"] == [8.0, 9.5, 9.0]
    assert short["soak_lag"].figures["maintenance_and_housekeeping_runs"] == [["maintenance_job", 1.0, 1.4],
                                                                            ["housekeeping_job", 1.0, None]]
    assert short["soak_dagster_storage"].figures["stays_per_100_micro_batches"] == 2_000_000  # 160 KB over 8, per 100
    assert [short[n].met for n in ("soak_lag", "soak_batch_size", "soak_dagster_storage")] == [None, None, None]
    assert short["soak_files"].met is True  # files per partition mean the same after 3 minutes
    full = {c.name: c for c in soak_comparisons(result, {"minutes": 20})}
    assert full["soak_dagster_storage"].met is False and full["soak_dagster_storage"].ratio == 0.5


def test_the_soak_measures_storage_growth_between_clean_ups_that_deleted_runs():
    # (seconds, bytes, micro-batches so far, runs deleted) after each housekeeping run
    samples = [(120, 5_000_000, 4, 0), (240, 6_000_000, 9, 30), (360, 6_100_000, 14, 31), (480, 6_300_000, 19, 29)]
    per_100, between = storage_growth(samples)
    assert per_100 == (6_300_000 - 6_000_000) / 10 * 100  # from the first clean-up that deleted runs, not the first
    assert between["micro_batches_between"] == 10 and between["minutes_between"] == 4
    assert storage_growth(samples[:2]) == (None, {})  # one clean-up that deleted runs is not a growth
    assert stays_per_micro_batches(before=300_000, left=1_500_000, micro_batches=40) == 3_000_000


def test_what_stays_of_dagsters_storage_once_every_successful_routine_run_is_deleted(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        micro_batch = create_run_for_test(instance, job_name="streaming_job", tags=STREAMING_TAGS,
                                          status=dg.DagsterRunStatus.SUCCESS)
        instance.report_engine_event("an event in the run's own database", micro_batch)
        step_logs = tmp_path / "storage" / micro_batch.run_id / "compute_logs"
        step_logs.mkdir(parents=True)
        (step_logs / "step.err").write_bytes(b"x" * 1000)
        queued = create_run_for_test(instance, job_name="maintenance_job", status=dg.DagsterRunStatus.NOT_STARTED)
        failed = create_run_for_test(instance, job_name="streaming_job", status=dg.DagsterRunStatus.FAILURE)
        before = storage_bytes(tmp_path)
        left, queued_deleted = what_stays(instance, tmp_path)
        assert queued_deleted == 1 and instance.get_run_by_id(queued.run_id) is None
        assert instance.get_run_by_id(micro_batch.run_id) is None and instance.get_run_by_id(failed.run_id) is not None
        assert left == storage_bytes(tmp_path) < before
        assert storage_bytes(tmp_path) == sum(live_bytes(tmp_path).values()) + files_bytes(tmp_path / "storage")
        assert not (tmp_path / "history/runs" / f"{micro_batch.run_id}.db").exists() and not step_logs.exists()


def test_dagster_storage_is_broken_down_by_table_with_each_runs_event_log_summed(tmp_path):
    import sqlite3

    for name, rows in (("schedules/schedules.db", 2000), ("history/runs/index.db", 10), ("history/runs/abc.db", 500),
                       ("history/runs/def.db", 500)):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(tmp_path / name) as db:
            db.execute("CREATE TABLE job_ticks (body TEXT)")
            db.executemany("INSERT INTO job_ticks VALUES (?)", [("x" * 200,)] * rows)
    sizes = live_bytes_by_table(tmp_path)
    assert next(iter(sizes)) == "schedules/schedules.db:job_ticks"  # the largest first
    assert sizes["schedules/schedules.db:job_ticks"] > 2000 * 200 > sizes["history/runs/index.db:job_ticks"]
    assert sizes["per-run event logs"] >= 2 * 500 * 200
    assert not any(name.startswith("history/runs/abc.db") for name in sizes)


def test_the_history_windows_give_neither_side_both_the_first_and_the_last():
    assert window_order(2) == ("fresh", "history", "history", "fresh")
    assert window_order(1) == ("fresh", "history")
    with pytest.raises(ValueError, match="1 or 2"):
        window_order(3)
