"""Kafka -> raw: the raw/pin, raw/geo, raw/user and raw/rejects tables, written exactly once per offset."""

import dagster as dg
from dagster_pyspark import PySparkResource

from pinterest_dagster.lib.ingestion import ingest_ranges, partition_coverage, run_group_id
from pinterest_dagster.lib.offsets import OffsetRange, ranges_text, ranges_to_ingest
from pinterest_dagster.lib.pools import LAKE_WRITES
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import fit_code_generation
from pinterest_dagster.lib.streaming_runs import HEALED_TAG, ranges_in_flight, streaming_cursor
from pinterest_dagster.settings import TOPIC_KINDS

RAW_DESCRIPTIONS = {
    "pin": "Every accepted pin event: the pinterest_data row as sent (strings stay strings), plus Kafka "
    "lineage (_topic, _partition, _offset, _kafka_timestamp, _ingested_at). Append-only.",
    "geo": "Every accepted geolocation event (geolocation_data row as sent) with Kafka lineage. Append-only.",
    "user": "Every accepted user event (user_data row as sent) with Kafka lineage. Append-only.",
    "rejects": "Every event that could not be parsed (not JSON, not an object, no integer key), from all "
    "topics: Kafka lineage, the raw value as text and the reason. Events read = raw rows + rejects.",
}

RAW_KEYS = {name: dg.AssetKey(["raw", name]) for name in (*TOPIC_KINDS, "rejects")}


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
    name="ingest_kafka_events",
    pool=LAKE_WRITES,
    specs=[
        dg.AssetSpec(key, group_name="raw", kinds={"kafka", "spark", "delta"}, description=RAW_DESCRIPTIONS[name])
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
    healed = []
    if ranges and config.heal_gaps:
        # Retained offsets below the highest one ingested that no range covers (a run that failed for good, a
        # cursor moved past them), from one read of the ingestion log against Kafka's offsets.
        healed = ranges_to_ingest(partition_coverage(spark, lake, kafka), owned + ranges)
        ranges = sorted(ranges + healed)
    elif not ranges:
        # A catch-up, gaps included: up to the end of each partition, but while the sensor streams, the offsets
        # from its cursor on are streaming's.
        coverage = partition_coverage(spark, lake, kafka)
        up_to = streaming_cursor(context.instance) or {(c.topic, c.partition): c.end for c in coverage}
        ranges = ranges_to_ingest(coverage, owned, up_to, config.max_records_per_partition)
        until = {(c.topic, c.partition): c.until for c in coverage}
        healed = [r for r in ranges if r.end <= until[(r.topic, r.partition)]]
    if healed:
        context.log.warning(f"healing {sum(r.size for r in healed):,} offsets missing from the lake: {ranges_text(healed)}")
        context.instance.add_run_tags(context.run_id, {HEALED_TAG: ranges_text(healed, limit=5)})
    offsets = sum(r.size for r in ranges)
    context.log.info(f"ingesting {offsets:,} offsets in {len(ranges)} ranges")
    fit_code_generation(spark, offsets)
    counts = ingest_ranges(spark, lake, kafka, ranges, run_id=group)
    for kind in TOPIC_KINDS:
        kind_counts = counts.get(kind)
        yield dg.MaterializeResult(
            asset_key=RAW_KEYS[kind],
            metadata={
                "events_read": kind_counts.read if kind_counts else 0,
                "rows_added": kind_counts.accepted if kind_counts else 0,
                "path": dg.MetadataValue.path(lake.path("raw", kind)),
            },
        )
    yield dg.MaterializeResult(
        asset_key=RAW_KEYS["rejects"],
        metadata={
            "rows_added": sum(c.rejected for c in counts.values()),
            "offset_ranges": ranges_text(ranges, limit=50),
            "healed_ranges": ranges_text(healed, limit=50),
            "path": dg.MetadataValue.path(lake.path("raw", "rejects")),
        },
    )
