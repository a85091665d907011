"""No gaps: completeness measured against Kafka's offsets, gaps healed by a micro-batch, retention losses
reported, recreated topics named. Real broker, in-process runs on the real lake."""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from pyspark.sql import functions as F

from pinterest_dagster.defs.ingest.checks import COMPLETENESS_CHECK
from pinterest_dagster.defs.merge import assets as merge_assets
from pinterest_dagster.defs.streaming.sensors import replan_request
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import lag
from pinterest_dagster.lib.kafka import client_config, end_offsets, make_producer, offset_bounds
from pinterest_dagster.lib.microbatch import cursor_key, run_config
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.settings import TOPIC_KINDS
from pinterest_dagster_tests.pipeline import make_pipeline
from pinterest_dagster_tests.streaming.test_streaming_run import sensor_run_configs

LOST = 4  # geo events deleted from Kafka before the pipeline read them, as retention would
SKIPPED = 5  # pin offsets a cursor moved past


@pytest.fixture(scope="module")
def pipeline(spark, tmp_path_factory, source_url):
    return make_pipeline(tmp_path_factory, source_url, spark_remote=None)


def completeness(pipeline) -> dict[str, dg.AssetCheckEvaluation]:
    keys = [dg.AssetCheckKey(dg.AssetKey(["raw", kind]), COMPLETENESS_CHECK) for kind in TOPIC_KINDS]
    job = dg.define_asset_job("completeness", selection=dg.AssetSelection.checks(*keys))
    defs = dg.Definitions.merge(pipeline.defs, dg.Definitions(jobs=[job]))
    result = defs.resolve_job_def("completeness").execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    return {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}


def cursor_at_kafkas_end(pipeline) -> str:
    """The sensor's cursor at the end of every partition: the next micro-batch plans only what is posted after."""
    ends = end_offsets(pipeline.settings, list(pipeline.settings.topics.values()))
    return json.dumps({cursor_key(tp.topic, tp.partition): end for tp, end in ends.items()})


def ranges_of(config) -> list[dict]:
    return config["ops"]["ingest_kafka_events"]["config"]["ranges"]


@pytest.fixture(scope="module")
def with_holes(pipeline):
    """60 posts; 4 geo events deleted before ingestion; the first micro-batch skips 5 pin offsets."""
    pipeline.post_emulated(posts=60, seed=11)
    geo = TopicPartition(pipeline.settings.topic("geo"), 0)
    admin = KafkaAdminClient(**client_config(pipeline.settings))
    admin.delete_records({geo: LOST})  # what retention does: the partition's first offset moves on
    admin.close()
    [config], cursor = sensor_run_configs(pipeline)
    pin = next(r for r in ranges_of(config) if r["topic"] == pipeline.settings.topic("pin") and r["end"] - r["start"] > SKIPPED)
    pin["start"] += SKIPPED
    pipeline.run_job("streaming_job", config)
    return pin, cursor


def test_a_gap_and_a_retention_loss_fail_the_check_against_kafka_and_count_as_lag(with_holes, pipeline, spark):
    pin, _ = with_holes
    checks = completeness(pipeline)
    gap = f"{pin['topic']}[{pin['partition']}] {pin['start'] - SKIPPED}-{pin['start']}"
    assert not checks["pin"].passed and checks["pin"].severity == dg.AssetCheckSeverity.ERROR
    assert checks["pin"].metadata["missing_offsets"].value == SKIPPED
    assert checks["pin"].metadata["gaps"].value == gap
    # Lost to retention: reported, but as a warning, which blocks nothing downstream.
    geo = pipeline.settings.topic("geo")
    assert not checks["geo"].passed and checks["geo"].severity == dg.AssetCheckSeverity.WARN
    assert checks["geo"].metadata["lost_ranges"].value == f"{geo}[0] 0-{LOST}"
    assert checks["geo"].metadata["lost_to_retention"].value == LOST
    assert checks["geo"].metadata["missing_offsets"].value == 0
    assert checks["user"].passed
    kafka, lake = KafkaResource.from_settings(pipeline.settings), LakeResource.from_settings(pipeline.settings)
    assert lag(spark, lake, kafka) == SKIPPED


def test_a_micro_batch_that_heals_fills_the_gap_and_merges_it(with_holes, pipeline, spark):
    pin, cursor = with_holes
    pipeline.post_emulated(posts=10, seed=12)
    [config], _ = sensor_run_configs(pipeline, cursor=cursor)
    healing = run_config([], heal_gaps=True)
    healing["ops"]["ingest_kafka_events"]["config"]["ranges"] = ranges_of(config)
    result = pipeline.run_job("streaming_job", healing)
    [ingest] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(["raw", "rejects"])]
    assert ingest.materialization.metadata["healed_ranges"].value.startswith(f"{pin['topic']}[{pin['partition']}] ")

    checks = completeness(pipeline)
    assert checks["pin"].passed, checks["pin"].metadata
    assert checks["geo"].metadata["lost_to_retention"].value == LOST  # still reported: those events are gone
    raw = delta.read_table(spark, pipeline.settings.table_path("raw", "pin"))
    assert raw.select("_partition", "_offset").distinct().count() == raw.count() == 70
    cleaned = delta.read_table(spark, pipeline.settings.table_path("cleaned", "pin"))
    assert cleaned.count() == raw.select("index").distinct().count()
    kafka, lake = KafkaResource.from_settings(pipeline.settings), LakeResource.from_settings(pipeline.settings)
    assert lag(spark, lake, kafka) == 0


def test_the_daily_batch_goes_on_after_a_retention_loss(with_holes, pipeline, spark):
    result = pipeline.run_batch_job()
    failed = {e.asset_key.path[-1]: e.severity for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {"geo": dg.AssetCheckSeverity.WARN}
    geo = delta.read_table(spark, pipeline.settings.table_path("raw", "geo"))
    bounds = offset_bounds(pipeline.settings, [pipeline.settings.topic("geo")])
    assert geo.count() == sum(end - first for first, end in bounds.values())
    assert delta.read_table(spark, pipeline.settings.table_path("aggregated", "top_category_by_country")).count() > 0
    assert geo.where(F.col("_partition") == 0).agg(F.min("_offset")).first()[0] == LOST


def test_a_topic_with_tiny_retention_reports_the_events_it_deleted_before_ingestion(spark, tmp_path_factory, source_url):
    """Kafka's own retention, not a deletion by hand: a segment older than `retention.ms` goes, and the
    partition's first offset moves past events the pipeline never read."""
    pipeline = make_pipeline(tmp_path_factory, source_url, spark_remote=None)
    topic = pipeline.settings.topic("user")
    admin = KafkaAdminClient(**client_config(pipeline.settings))
    # Segments roll after 100 ms and are deleted 1 s after their last event (the local broker checks every 5 s).
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "1000", "segment.ms": "100"})])
    admin.close()
    producer = make_producer(pipeline.settings)
    user = {"first_name": "Ann", "last_name": "Lee", "age": 30, "date_joined": "2016-01-02 03:04:05"}
    for ind in range(10):
        producer.send(topic, key=str(ind).encode(), value=json.dumps({**user, "ind": ind}).encode(), partition=0)
    producer.flush()
    time.sleep(1.5)
    producer.send(topic, key=b"10", value=json.dumps({**user, "ind": 10}).encode(), partition=0)  # rolls the segment
    producer.flush()
    producer.close()
    deadline = time.monotonic() + 90
    while offset_bounds(pipeline.settings, [topic])[TopicPartition(topic, 0)][0] == 0:
        assert time.monotonic() < deadline, "retention deleted nothing within 90 s"
        time.sleep(1)
    admin = KafkaAdminClient(**client_config(pipeline.settings))
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "-1"})])
    admin.close()
    first, end = offset_bounds(pipeline.settings, [topic])[TopicPartition(topic, 0)]  # retention may have gone on until now
    if first == end:
        # Kafka also deletes the active segment once all of it is past retention: an event after the loss.
        producer = make_producer(pipeline.settings)
        producer.send(topic, key=b"11", value=json.dumps({**user, "ind": 11}).encode(), partition=0)
        producer.flush()
        producer.close()
    [config], _ = sensor_run_configs(pipeline)
    pipeline.run_job("streaming_job", config)
    check = completeness(pipeline)["user"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["lost_ranges"].value == f"{topic}[0] 0-{first}"
    assert check.metadata["missing_offsets"].value == 0


def test_a_range_retention_reached_while_its_run_waited_is_read_from_kafkas_first_offset(with_holes, pipeline, spark):
    """The sensor planned a range; before its run read it, retention moved the partition's first offset into it
    (the run waited behind a long batch_job, or Spark was down). Spark's Kafka source fails on the missing
    offsets, in every attempt and every re-plan: the run must ingest what Kafka still holds, and the check name
    the rest as lost. Takes its cursor from Kafka's end offsets; the check's lost ranges assume the lake caught up
    with what came before (the daily batch above)."""
    cursor = cursor_at_kafkas_end(pipeline)
    pipeline.post_emulated(posts=30, seed=13)
    [config], _ = sensor_run_configs(pipeline, cursor=cursor)
    user = next(r for r in ranges_of(config) if r["topic"] == pipeline.settings.topic("user") and r["end"] - r["start"] >= 3)
    deleted_to = user["start"] + 2
    admin = KafkaAdminClient(**client_config(pipeline.settings))
    admin.delete_records({TopicPartition(user["topic"], user["partition"]): deleted_to})
    admin.close()

    pipeline.run_job("streaming_job", config)
    raw = delta.read_table(spark, pipeline.settings.table_path("raw", "user")).where(
        (F.col("_partition") == user["partition"]) & (F.col("_offset") >= user["start"]) & (F.col("_offset") < user["end"]))
    assert sorted(r[0] for r in raw.select("_offset").collect()) == list(range(deleted_to, user["end"]))
    check = completeness(pipeline)["user"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["lost_ranges"].value == f"{user['topic']}[{user['partition']}] {user['start']}-{deleted_to}"
    assert check.metadata["missing_offsets"].value == 0


def test_re_planned_micro_batches_merge_the_gaps_the_failed_one_healed(with_holes, pipeline, spark, monkeypatch):
    """A micro-batch that heals gaps writes them to raw and logs them, then fails for good in its merge, and so does
    its re-plan (Spark stays down): the re-plan of the re-plan must merge those gaps (no later run ingests or
    merges them, as they are logged). Takes its cursor from Kafka's end offsets."""
    cursor = cursor_at_kafkas_end(pipeline)
    pipeline.post_emulated(posts=60, seed=14)
    [config], cursor = sensor_run_configs(pipeline, cursor=cursor)
    pin = next(r for r in ranges_of(config) if r["topic"] == pipeline.settings.topic("pin") and r["end"] - r["start"] > 12)
    gap = (pin["partition"], pin["start"], pin["start"] + 12)
    pin["start"] += 12  # a gap of 12 pin offsets, as a cursor moved past them
    pipeline.run_job("streaming_job", config)
    pipeline.post_emulated(posts=5, seed=15)
    [config], _ = sensor_run_configs(pipeline, cursor=cursor)
    healing = run_config([], heal_gaps=True)
    healing["ops"]["ingest_kafka_events"]["config"]["ranges"] = ranges_of(config)
    job, instance = pipeline.defs.resolve_job_def("streaming_job"), dg.DagsterInstance.ephemeral()

    def failing(*args, **kwargs):
        raise RuntimeError("the merge step fails in every attempt")

    with monkeypatch.context() as patched:
        patched.setattr(merge_assets, "cleaned_rows", failing)
        failed = job.execute_in_process(run_config=healing, instance=instance, raise_on_error=False)
        request = replan_request(failed.dagster_run)
        failed_again = job.execute_in_process(run_config=request.run_config, tags=request.tags, instance=instance,
                                              raise_on_error=False)
    assert not failed.success and not failed_again.success
    request = replan_request(failed_again.dagster_run)
    assert job.execute_in_process(run_config=request.run_config, tags=request.tags, instance=instance).success
    raw = delta.read_table(spark, pipeline.settings.table_path("raw", "pin"))
    in_gap = raw.where((F.col("_partition") == gap[0]) & (F.col("_offset") >= gap[1]) & (F.col("_offset") < gap[2]))
    keys = {r[0] for r in in_gap.select(F.col("index").cast("long")).collect()}  # raw keeps the text as sent
    cleaned = delta.read_table(spark, pipeline.settings.table_path("cleaned", "pin"))
    assert len(keys) > 0 and keys <= {r[0] for r in cleaned.select("ind").collect()}  # cleaned renames index
    assert cleaned.count() == raw.select("index").distinct().count()
