"""Raw loses nothing (docs/architecture.md section 4): 64-bit keys flow to every table, the event is kept exactly as
sent with fields the contract does not name, drift is reported by a check, a rebuild needs nothing but
the kept events, and topics whose every event was rejected still give a successful batch_job."""

from __future__ import annotations

import dagster as dg
import pytest
from kafka import KafkaAdminClient
from pyspark.sql import functions as F

from pinterest_dagster.defs.batch.jobs import FULL_REFRESH
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import OffsetRange, ingest_ranges
from pinterest_dagster.lib.kafka import client_config
from pinterest_dagster.lib.microbatch import run_config
from pinterest_dagster.lib.realtime_state import poster_state_path
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.settings import TOPIC_KINDS
from pinterest_dagster.transforms.aggregate import AGGREGATES
from pinterest_dagster.transforms.parse import SOURCE_COLUMNS
from pinterest_dagster_tests.lakehouse.test_batch_job import GEOS, PIN, USERS
from pinterest_dagster_tests.pipeline import make_pipeline

BIG = 3_000_000_001  # beyond 2^31: real pin ids are 64-bit
BIG_POST = {
    "pin": {**PIN, "index": BIG, "unique_id": "u-big", "poster_name": "Big Poster", "follower_count": "2M",
            "category": "travel"},
    "geo": {**GEOS[0], "ind": BIG, "country": "Iceland"},
    "user": {**USERS[1], "ind": BIG, "age": 40},
}
# An upstream that started sending a field the contract does not name, and stopped sending `category`.
DRIFTED_PIN = {**{k: v for k, v in PIN.items() if k != "category"}, "index": 7, "board_id": "board-17"}


@pytest.fixture(scope="module")
def batch_run(pipeline):
    """A streaming micro-batch (the realtime tables), then batch_job (the aggregated tables and checks)."""
    def send():
        for kind in TOPIC_KINDS:
            pipeline.send(kind, [BIG_POST[kind]] + ([PIN, DRIFTED_PIN] if kind == "pin" else []))

    pipeline.run_job("streaming_job", run_config(pipeline.ranges_sent_by(send)))
    return pipeline.run_batch_job()


def table(spark, pipeline, layer, name):
    return delta.read_table(spark, pipeline.settings.table_path(layer, name))


def check_result(result: dg.ExecuteInProcessResult, kind: str, name: str):
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    [evaluation] = [e for e in evaluations if e.asset_key == dg.AssetKey(["raw", kind]) and e.check_name == name]
    return evaluation


def test_a_key_above_2_31_flows_to_every_table(batch_run, spark, pipeline):
    for kind in TOPIC_KINDS:
        key = "index" if kind == "pin" else "ind"
        assert table(spark, pipeline, "raw", kind).where(F.col(key) == str(BIG)).count() == 1, kind
        cleaned = table(spark, pipeline, "cleaned", kind)
        assert dict(cleaned.dtypes)["ind"] == "bigint"
        assert cleaned.where(F.col("ind") == BIG).count() == 1, kind
    assert table(spark, pipeline, "raw", "rejects").count() == 0
    state = delta.read_table(spark, poster_state_path(LakeResource.from_settings(pipeline.settings)))
    assert state.where(F.col("ind") == BIG).select("poster_name").first()[0] == "Big Poster"
    popularity = table(spark, pipeline, "realtime", "poster_popularity").where("poster_name = 'Big Poster'").first()
    assert (popularity["pin_count"], popularity["follower_count"]) == (1, 2_000_000)
    # The aggregated joins on ind find the post: Iceland's top category and top poster come from it.
    by_country = table(spark, pipeline, "aggregated", "top_category_by_country").where("country = 'Iceland'").first()
    assert (by_country["category"], by_country["category_count"]) == ("travel", 1)
    top_user = table(spark, pipeline, "aggregated", "top_user_by_country").where("country = 'Iceland'").first()
    assert (top_user["poster_name"], top_user["follower_count"]) == ("Big Poster", 2_000_000)


def test_raw_keeps_the_event_exactly_as_sent_with_its_unknown_field(batch_run, spark, pipeline):
    row = table(spark, pipeline, "raw", "pin").where("index = '7'").first()
    assert '"board_id": "board-17"' in row["_event"]
    assert "board_id" not in row.asDict()


def test_the_drift_check_names_unknown_and_missing_fields_with_their_counts(batch_run):
    pin = check_result(batch_run, "pin", "event_fields_match_contract")
    assert not pin.passed
    assert pin.severity == dg.AssetCheckSeverity.WARN
    assert pin.metadata["unknown_fields"].value == "board_id"
    assert pin.metadata["missing_fields"].value == "category"
    drift = pin.metadata["drift"].value
    assert "| unknown | `board_id` | 1 |" in drift and "| missing | `category` | 1 |" in drift
    geo = check_result(batch_run, "geo", "event_fields_match_contract")
    assert geo.passed and geo.metadata["unknown_fields"].value == "none"


def test_re_ingesting_a_range_takes_an_event_out_of_the_table_it_was_in(batch_run, spark, pipeline):
    """As after a rule change: an event that an earlier version rejected is accepted when its range is
    ingested again, and leaves rejects, though the range brings no reject this time."""
    event = table(spark, pipeline, "raw", "pin").where("index = '7'").first()
    rejects_path = pipeline.settings.table_path("raw", "rejects")
    rejected_before = spark.createDataFrame(
        [(event["_topic"], event["_partition"], event["_offset"], event["_kafka_timestamp"], event["_event"], "old rule")],
        table(spark, pipeline, "raw", "rejects").schema)
    rejected_before.write.format("delta").mode("append").save(rejects_path)

    offset = OffsetRange(event["_topic"], event["_partition"], event["_offset"], event["_offset"] + 1)
    ingest_ranges(spark, LakeResource.from_settings(pipeline.settings), KafkaResource.from_settings(pipeline.settings),
                  [offset])
    assert table(spark, pipeline, "raw", "rejects").where(offset.predicate()).count() == 0
    assert table(spark, pipeline, "raw", "pin").where(offset.predicate()).count() == 1


def test_a_rebuild_reproduces_cleaned_from_the_kept_events_alone(batch_run, spark, pipeline):
    def cleaned(kind):
        return sorted(map(str, table(spark, pipeline, "cleaned", kind).collect()))

    before = {kind: cleaned(kind) for kind in TOPIC_KINDS}
    admin = KafkaAdminClient(**client_config(pipeline.settings))
    admin.delete_topics(list(pipeline.settings.topics.values()))  # Kafka's retention has passed
    admin.close()
    for kind in TOPIC_KINDS:
        # Keep nothing of raw but the events as sent and their lineage.
        path = pipeline.settings.table_path("raw", kind)
        kept = table(spark, pipeline, "raw", kind)
        for name in SOURCE_COLUMNS[kind]:
            kept = kept.withColumn(name, F.lit(None).cast("string"))
        kept.write.format("delta").mode("overwrite").save(path)
    cleaned_keys = [dg.AssetKey(["cleaned", kind]) for kind in TOPIC_KINDS]
    result = pipeline.defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=cleaned_keys, run_config=FULL_REFRESH)
    assert result.success
    assert {kind: cleaned(kind) for kind in TOPIC_KINDS} == before


@pytest.fixture(scope="module")
def all_rejected(tmp_path_factory, source_url):
    pipeline = make_pipeline(tmp_path_factory, source_url, spark_remote=None)
    for kind in TOPIC_KINDS:
        pipeline.send(kind, ["not json", '{"index": "abc", "ind": "abc"}'])
    return pipeline, pipeline.run_batch_job()


def test_batch_job_over_topics_whose_events_were_all_rejected_builds_empty_tables(all_rejected, spark):
    pipeline, result = all_rejected
    assert table(spark, pipeline, "raw", "rejects").count() == 2 * len(TOPIC_KINDS)
    for kind in TOPIC_KINDS:
        assert table(spark, pipeline, "cleaned", kind).count() == 0
    for name in AGGREGATES:
        assert table(spark, pipeline, "aggregated", name).count() == 0
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    contract = [e for e in evaluations if e.asset_key.path[0] == "cleaned"]
    assert contract and all(e.passed for e in contract)
    assert {e.metadata["rows"].value for e in contract if e.check_name == "ind_unique"} == {0}
