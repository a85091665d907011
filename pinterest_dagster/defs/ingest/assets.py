"""Kafka -> raw: the raw/pin, raw/geo, raw/user and raw/rejects tables, written exactly once per offset."""

import dagster as dg
from dagster_pyspark import PySparkResource

from pinterest_dagster.lib.ingestion import (
    OffsetRange, ingest_ranges, plan_catch_up, run_group_id,
)
from pinterest_dagster.lib.pools import LAKE_WRITES
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import fit_code_generation
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
    """Exact offset ranges to ingest (streaming runs); none means catch up with the end of every partition."""

    ranges: list[OffsetRangeConfig] = []
    max_records_per_partition: int | None = None


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
    if config.ranges:
        ranges = [OffsetRange(r.topic, r.partition, r.start, r.end) for r in config.ranges]
    else:
        ranges = plan_catch_up(spark, lake, kafka, config.max_records_per_partition)
    offsets = sum(r.size for r in ranges)
    context.log.info(f"ingesting {offsets:,} offsets in {len(ranges)} ranges")
    fit_code_generation(spark, offsets)
    counts = ingest_ranges(spark, lake, kafka, ranges, run_id=run_group_id(context.run))
    ranges_text = ", ".join(f"{r.topic}[{r.partition}] {r.start}-{r.end}" for r in ranges) or "none (up to date)"
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
            "offset_ranges": ranges_text,
            "path": dg.MetadataValue.path(lake.path("raw", "rejects")),
        },
    )
