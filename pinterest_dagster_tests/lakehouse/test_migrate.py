"""`make migrate`: a lake written by an earlier version (raw without `_event`, unpartitioned, or partitioned by
`_kafka_date` alone; cleaned with 32-bit keys and no lineage; no poster state) is brought up to date once,
and streaming goes on."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest
from pyspark.sql import functions as F

from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import OffsetRange, raw_is_current
from pinterest_dagster.lib.microbatch import run_config
from pinterest_dagster.lib.realtime_state import poster_state_path
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.migrate import merged_table_paths, migrate, migrate_raw, table_has_properties
from pinterest_dagster.settings import TOPIC_KINDS
from pinterest_dagster.transforms import CLEANED_COLUMNS


def post_and_plan(pipeline, posts: int, seed: int) -> list[OffsetRange]:
    return pipeline.ranges_sent_by(lambda: pipeline.post_emulated(posts=posts, seed=seed))


def rewrite(spark, path: str, df) -> None:
    """Replaces a table by `df` in the layout of the previous version: no partitions."""
    rows = df.localCheckpoint()
    shutil.rmtree(path)
    rows.write.format("delta").save(path)


def make_legacy(spark, pipeline) -> None:
    lake = LakeResource.from_settings(pipeline.settings)
    for kind in TOPIC_KINDS:
        raw = pipeline.settings.table_path("raw", kind)
        rewrite(spark, raw, delta.read_table(spark, raw).drop("_event", "_kafka_date", "_kafka_partition"))
        cleaned = pipeline.settings.table_path("cleaned", kind)
        rewrite(spark, cleaned, delta.read_table(spark, cleaned).select(
            *[F.col(c).cast("int") if c == "ind" else c for c in CLEANED_COLUMNS[kind]]))
    shutil.rmtree(poster_state_path(lake))


@pytest.fixture(scope="module")
def legacy_lake(pipeline, spark):
    pipeline.run_job("streaming_job", run_config(post_and_plan(pipeline, 40, seed=1)))
    make_legacy(spark, pipeline)
    return pipeline


@pytest.fixture(scope="module")
def failed_batch(legacy_lake):
    batch = post_and_plan(legacy_lake, 10, seed=2)
    result = legacy_lake.defs.resolve_job_def("streaming_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), run_config=run_config(batch), raise_on_error=False)
    return batch, result


def test_streaming_on_a_legacy_lake_fails_with_the_command_that_migrates_it(failed_batch):
    _, result = failed_batch
    assert not result.success
    failure = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE][0]
    assert "run `make migrate` once" in failure.event_specific_data.error.to_string()


def test_migrate_brings_the_lake_up_to_date_once_and_streaming_goes_on(legacy_lake, failed_batch, spark):
    lake = LakeResource.from_settings(legacy_lake.settings)
    done = migrate(spark, lake)
    assert done[:4] == ["raw/pin", "raw/geo", "raw/user", "cleaned and realtime tables"]
    # The legacy cleaned tables kept column statistics; the ones written by this version keep none.
    assert len(done) == 5 and done[4].startswith("no column statistics in ")
    assert all(table_has_properties(spark, path, delta.MERGED_TABLE_PROPERTIES) for path in merged_table_paths(lake))
    assert migrate(spark, lake) == []  # a second time: nothing left to do

    legacy_lake.run_job("streaming_job", run_config(failed_batch[0]))  # as its retry would
    legacy_lake.run_job("streaming_job", run_config(post_and_plan(legacy_lake, 20, seed=3)))
    for kind in TOPIC_KINDS:
        raw = delta.read_table(spark, legacy_lake.settings.table_path("raw", kind))
        # 40 posts before the migration, then the 10 of the failed run, retried, and 20 more.
        assert raw.count() == raw.select("_partition", "_offset").distinct().count() == 70
        # Events ingested before the migration were not kept as sent; every later one is.
        assert raw.where(F.col("_event").isNotNull()).count() == 30
        cleaned = delta.read_table(spark, legacy_lake.settings.table_path("cleaned", kind))
        assert dict(cleaned.dtypes)["ind"] == "bigint" and "_offset" in cleaned.columns
    assert delta.table_exists(spark, poster_state_path(lake))


def test_a_raw_table_partitioned_by_kafka_date_alone_is_rewritten_by_kafka_partition_too(spark, tmp_path):
    """The layout before raw was partitioned by Kafka partition too: `_event` kept, partitioned by `_kafka_date`."""
    lake = LakeResource(root=str(tmp_path))
    path = lake.path("raw", "geo")
    rows = spark.range(6).selectExpr(
        "'t.geo' AS _topic", "CAST(id % 2 AS INT) AS _partition", "id AS _offset",
        "TIMESTAMP'2026-12-01 12:00:00' AS _kafka_timestamp", "CAST(id AS STRING) AS _event",
        "DATE'2026-12-01' AS _kafka_date")
    rows.write.format("delta").partitionBy("_kafka_date").save(path)
    assert not raw_is_current(spark, path)
    assert migrate_raw(spark, lake, "geo")
    assert raw_is_current(spark, path) and not migrate_raw(spark, lake, "geo")
    migrated = delta.read_table(spark, path)
    assert sorted((r["_partition"], r["_offset"], r["_kafka_partition"], r["_event"]) for r in migrated.collect()) == sorted(
        (offset % 2, offset, offset % 2, str(offset)) for offset in range(6))
