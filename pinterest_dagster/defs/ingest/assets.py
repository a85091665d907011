"""Kafka -> raw: the raw/pin, raw/geo, raw/user and raw/rejects tables, written exactly once per offset."""

import warnings

import dagster as dg
from dagster_pyspark import PySparkResource

from pinterest_dagster.lib.io_managers import column_schema
from pinterest_dagster.lib.ingestion import ingest_ranges, partition_coverage, topic_observations
from pinterest_dagster.lib.microbatch import (
    INGEST_STEP, cursor_reset_command, parse_cursor, parse_failures_checked_at, parse_topic_ids, recreated_topics,
)
from pinterest_dagster.lib import kafka as kafka_lib
from pinterest_dagster.lib.offsets import OffsetRange, ranges_text, ranges_to_ingest, retained_parts
from pinterest_dagster.lib.pools import LAKE_WRITES
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import fit_code_generation
from pinterest_dagster.lib.streaming_runs import (
    HEALED_TAG, SENSOR_NAME, ranges_in_flight, run_group_id, stored_sensor_cursor, streaming_cursor,
)
from pinterest_dagster.settings import TOPIC_KINDS
from pinterest_dagster.transforms.parse import raw_column_types

RAW_DESCRIPTIONS = {
    "pin": "Every accepted pin event: the pinterest_data row as sent (strings stay strings), the event's JSON text "
    "(_event), plus Kafka lineage (_topic, _partition, _offset, _kafka_timestamp, _ingested_at). Partitioned by "
    "_kafka_date and _kafka_partition (the Kafka date and partition). Append-only.",
    "geo": "Every accepted geolocation event (geolocation_data row as sent, and its JSON text) with Kafka lineage, "
    "laid out like raw/pin. Append-only.",
    "user": "Every accepted user event (user_data row as sent, and its JSON text) with Kafka lineage, laid out "
    "like raw/pin. Append-only.",
    "rejects": "Every event that could not be parsed (not JSON, not an object, no integer key), from all "
    "topics: Kafka lineage, the raw value as text and the reason. Events read = raw rows + rejects.",
}

RAW_KEYS = {name: dg.AssetKey(["raw", name]) for name in (*TOPIC_KINDS, "rejects")}
TOPIC_KEYS = {kind: dg.AssetKey(["kafka", kind]) for kind in TOPIC_KINDS}
# Known without reading the tables: a micro-batch reports them with no request to Spark.
RAW_SCHEMAS = {name: column_schema(raw_column_types(name)) for name in RAW_KEYS}

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)  # code references are beta in Dagster 1.13; the UI shows them
    TOPIC_CODE_REFERENCES = dg.CodeReferencesMetadataValue(
        code_references=[dg.LocalFileCodeReference(file_path=__file__, label="defined here")])

# The topics, as external assets upstream of raw: Kafka writes them, every ingestion observes them (its end
# offsets and how far the lake is behind), and the UI plots those observations over time.
kafka_topic_specs = [
    dg.AssetSpec(key, group_name="kafka", kinds={"kafka"},
                 metadata={"dagster/code_references": TOPIC_CODE_REFERENCES},
                 description=f"The `<prefix>.{kind}` Kafka topic (PINTEREST_TOPIC_PREFIX). Observed by every ingestion: "
                 "end_offset (events produced), lag_events (events not in the lake yet), lag_seconds (how old "
                 "the newest event in the lake is while events wait; 0 when none does).")
    for kind, key in TOPIC_KEYS.items()
]


class OffsetRangeConfig(dg.Config):
    topic: str
    partition: int
    start: int
    end: int


class IngestConfig(dg.Config):
    """Exact offset ranges to ingest (streaming runs); none means catch up: every retained offset not
    ingested yet, up to the end of each partition, or up to the streaming sensor's cursor while streaming
    runs (what lies beyond is streaming's). `heal_gaps` adds the gaps below what was ingested."""

    ranges: list[OffsetRangeConfig] = []
    max_records_per_partition: int | None = None
    heal_gaps: bool = False


@dg.multi_asset(
    name=INGEST_STEP,
    pool=LAKE_WRITES,
    specs=[
        dg.AssetSpec(key, group_name="raw", kinds={"kafka", "spark", "delta"}, description=RAW_DESCRIPTIONS[name],
                     deps=[TOPIC_KEYS[name]] if name in TOPIC_KEYS else list(TOPIC_KEYS.values()),
                     metadata={"dagster/column_schema": RAW_SCHEMAS[name]})
        for name, key in RAW_KEYS.items()
    ],
)
def ingest_kafka_events(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    pyspark: PySparkResource,
    lake: LakeResource,
    kafka: KafkaResource,
):
    """Read offset ranges from the pin/geo/user topics into the raw tables; retries never duplicate."""
    spark = pyspark.spark_session
    group = run_group_id(context.run)
    # Ranges that other streaming runs, queued or running, will write: left to them.
    owned = ranges_in_flight(context.instance, except_group=group)
    ranges = [OffsetRange(r.topic, r.partition, r.start, r.end) for r in config.ranges]
    healed, coverage, cursor = [], None, streaming_cursor(context.instance)
    if ranges and config.heal_gaps:
        # Retained offsets below the highest one ingested that no range covers (a run that failed for good, a
        # cursor moved past them), from one read of the ingestion log against Kafka's offsets.
        healed = ranges_to_ingest(not_recreated(context, kafka, partition_coverage(spark, lake, kafka)), owned + ranges)
        ranges = sorted(ranges + healed)
    elif not ranges:
        # A catch-up, gaps included: up to the end of each partition, but while the sensor streams, the offsets
        # from its cursor on are streaming's.
        coverage = not_recreated(context, kafka, partition_coverage(spark, lake, kafka))
        up_to = cursor or {(c.topic, c.partition): c.end for c in coverage}
        ranges = ranges_to_ingest(coverage, owned, up_to, config.max_records_per_partition)
        until = {(c.topic, c.partition): c.until for c in coverage}
        healed = [r for r in ranges if r.end <= until[(r.topic, r.partition)]]
    if healed:
        context.log.warning(f"healing {sum(r.size for r in healed):,} offsets missing from the lake: {ranges_text(healed)}")
        context.instance.add_run_tags(context.run_id, {HEALED_TAG: ranges_text(healed, limit=5)})
    offsets = sum(r.size for r in ranges)
    context.log.info(f"ingesting {offsets:,} offsets in {len(ranges)} ranges")
    fit_code_generation(spark, offsets)
    ranges, counts = ingest_retained(context, spark, lake, kafka, ranges, group)
    # How far behind Kafka the lake is: from the streaming cursor (no read of the log) while streaming runs.
    if cursor is None and coverage is None:
        coverage = partition_coverage(spark, lake, kafka)
    positions = cursor or {(c.topic, c.partition): max(c.until, c.first) for c in coverage}
    for kind, observation in topic_observations(kafka, counts, positions, ranges, owned).items():
        context.log_event(dg.AssetObservation(asset_key=TOPIC_KEYS[kind], metadata=observation))
    for kind in TOPIC_KINDS:
        kind_counts = counts.get(kind)
        yield dg.MaterializeResult(
            asset_key=RAW_KEYS[kind],
            metadata={
                "events_read": kind_counts.read if kind_counts else 0,
                "rows_added": kind_counts.accepted if kind_counts else 0,
                "path": dg.MetadataValue.path(lake.path("raw", kind)),
                "dagster/column_schema": RAW_SCHEMAS[kind],
            },
        )
    yield dg.MaterializeResult(
        asset_key=RAW_KEYS["rejects"],
        metadata={
            "rows_added": sum(c.rejected for c in counts.values()),
            "offset_ranges": ranges_text(ranges, limit=50),
            "healed_ranges": ranges_text(healed, limit=50),
            "path": dg.MetadataValue.path(lake.path("raw", "rejects")),
            "dagster/column_schema": RAW_SCHEMAS["rejects"],
        },
    )


def not_recreated(context: dg.AssetExecutionContext, kafka: KafkaResource, coverage: list):
    """The `coverage` of topics that have the Kafka id the streaming sensor's cursor last planned against. A topic
    deleted and recreated since is left alone: its new offsets are not the logged ranges' events, so neither healing
    nor a catch-up may take up its offsets from those ranges. The warning says how to reset the sensor's cursor.
    Without a sensor cursor (streaming never ran here) only an end gone backwards shows a recreation."""
    stored = stored_sensor_cursor(context.instance)
    known = parse_topic_ids(stored)
    if not known or not coverage:
        return coverage
    recreated = recreated_topics(known, kafka_lib.topic_ids(kafka.settings(), sorted({c.topic for c in coverage})))
    if recreated:
        bounds = {(c.topic, c.partition): (c.first, c.end) for c in coverage}
        context.log.warning(
            f"{', '.join(sorted(recreated))}: deleted and recreated since the streaming sensor last planned (its Kafka "
            "topic id changed): not healed or caught up until the sensor's cursor is reset. With the sensor stopped: "
            + cursor_reset_command(parse_cursor(stored), bounds, SENSOR_NAME, recreated, known,
                                   parse_failures_checked_at(stored)))
    return [c for c in coverage if c.topic not in recreated]


# How Spark's Kafka source says offsets it was asked for are gone (its error condition, and the messages of the
# Kafka consumer error behind it): the failure after which the ingestion asks Kafka what it still holds.
KAFKA_DATA_LOSS = ("KAFKA_DATA_LOSS", "Some data may have been lost", "OffsetOutOfRange")


def ingest_retained(context: dg.AssetExecutionContext, spark, lake: LakeResource, kafka: KafkaResource,
                    ranges: list[OffsetRange], group: str) -> tuple[list[OffsetRange], dict]:
    """Ingests `ranges`, or, when retention took the start of some while their run waited (Spark's Kafka source
    then fails on the missing offsets, in every attempt and every re-plan), what Kafka still holds of them: the
    completeness check names the rest as lost. Returns the ranges ingested and their counts. Kafka's first
    offsets are asked only after Spark reported such a loss: a micro-batch pays nothing for this."""
    try:
        return ranges, ingest_ranges(spark, lake, kafka, ranges, run_id=group)
    except Exception as error:
        if not any(marker in str(error) for marker in KAFKA_DATA_LOSS):
            raise
        try:
            bounds = kafka_lib.offset_bounds(kafka.settings(), sorted({r.topic for r in ranges}))
        except Exception:
            raise error from None
        kept, deleted = retained_parts(ranges, {(tp.topic, tp.partition): first for tp, (first, _) in bounds.items()})
        if not deleted:
            raise
        context.log.warning(
            f"retention deleted {sum(r.size for r in deleted):,} offsets of this run's ranges before it read them: "
            f"{ranges_text(deleted)}; ingesting the rest (the completeness check reports as lost what no run ingested)"
        )
        return kept, ingest_ranges(spark, lake, kafka, kept, run_id=group)
