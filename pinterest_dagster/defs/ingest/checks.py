"""Checks of the raw tables.

- `raw_completeness` (blocking): nothing lost, nothing doubled: for every topic, events read = rows in
  raw + rows in rejects.
- `raw_schema_drift` (warning): the events as sent carry the fields the contract names, and no others.
"""

import functools
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pinterest_dagster.defs.ingest.assets import RAW_KEYS
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import log_path
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import fit_code_generation_to
from pinterest_dagster.settings import TOPIC_KINDS
from pinterest_dagster.transforms.parse import SOURCE_COLUMNS


def covered_offsets(intervals: list[tuple[int, int]]) -> int:
    """How many offsets the union of `[start, end)` intervals covers."""
    covered, reach = 0, 0
    for start, end in sorted(intervals):
        start = max(start, reach)
        if end > start:
            covered += end - start
            reach = end
    return covered


def events_read(spark, lake: LakeResource) -> dict[str, int]:
    """Events read per topic: the offsets covered by every logged range, each counted once.

    Ranges can overlap (a range re-planned after a daemon crash, a re-execution), so their union is
    counted. Offsets are contiguous because the project's producers are not transactional.
    """
    if not delta.table_exists(spark, log_path(lake)):
        return {}
    intervals = defaultdict(list)
    for row in delta.read_table(spark, log_path(lake)).select("topic", "partition", "start_offset", "end_offset").collect():
        intervals[(row["topic"], row["partition"])].append((row["start_offset"], row["end_offset"]))
    read = defaultdict(int)
    for (topic, _), ranges in intervals.items():
        read[topic] += covered_offsets(ranges)
    return dict(read)


def offsets_stored(spark, lake: LakeResource, kind: str, topic: str):
    """The topic's rows in raw/<kind> and in raw/rejects, and the distinct offsets they hold together, in one query.

    Counted together, an event found in both tables is a duplicate as much as one found twice in either.
    """
    both = functools.reduce(DataFrame.unionByName, [
        delta.read_table(spark, lake.path("raw", table)).where(F.col("_topic") == topic)
        .select(F.lit(table).alias("_table"), "_partition", "_offset")
        for table in (kind, "rejects")
    ])
    return both.agg(
        F.sum(F.when(F.col("_table") == kind, 1).otherwise(0)).alias("raw"),
        F.sum(F.when(F.col("_table") == "rejects", 1).otherwise(0)).alias("rejects"),
        F.count_distinct("_partition", "_offset").alias("offsets"),
    ).first()


def completeness(read: int, stored) -> dict:
    raw_rows, rejects_rows = stored["raw"] or 0, stored["rejects"] or 0  # a sum over no rows is null
    return {"events_read": read, "raw_rows": raw_rows, "rejects_rows": rejects_rows,
            "duplicate_offsets": raw_rows + rejects_rows - stored["offsets"]}


@dg.multi_asset_check(
    name="raw_completeness",
    specs=[
        dg.AssetCheckSpec(
            "events_read_equal_raw_plus_rejects", asset=RAW_KEYS[kind], blocking=True,
            description="every event read from the topic is in exactly one of raw and rejects, exactly once",
        )
        for kind in TOPIC_KINDS
    ],
    can_subset=True,
)
def raw_completeness(context: dg.AssetCheckExecutionContext, pyspark: PySparkResource, lake: LakeResource,
                     kafka: KafkaResource):
    """One step for the three topics, counted concurrently: each count is one scan of a raw table."""
    spark = pyspark.spark_session
    kinds = [key.asset_key.path[-1] for key in context.selected_asset_check_keys]
    fit_code_generation_to([delta.read_table(spark, lake.path("raw", table)) for table in (*kinds, "rejects")])
    read = events_read(spark, lake)

    def check(kind: str) -> dg.AssetCheckResult:
        topic = kafka.topic(kind)
        counts = completeness(read.get(topic, 0), offsets_stored(spark, lake, kind, topic))
        return dg.AssetCheckResult(
            asset_key=RAW_KEYS[kind], check_name="events_read_equal_raw_plus_rejects",
            passed=counts["events_read"] == counts["raw_rows"] + counts["rejects_rows"] and counts["duplicate_offsets"] == 0,
            metadata=counts,
        )

    with ThreadPoolExecutor(len(kinds)) as pool:
        yield from pool.map(check, kinds)


def field_drift(raw: DataFrame, kind: str) -> list:
    """Per field that the events as sent carry beyond the contract ("unknown") or lack ("missing"):
    how many events, first and last seen (Kafka time), in one query over raw's `_event` column."""
    contract = F.array(*[F.lit(name) for name in SOURCE_COLUMNS[kind]])
    events = raw.where(F.col("_event").isNotNull()).select(
        F.json_object_keys("_event").alias("fields"), "_kafka_timestamp"
    )
    drift = functools.reduce(DataFrame.unionByName, [
        events.select(F.lit(change).alias("change"), F.explode(fields).alias("field"), "_kafka_timestamp")
        for change, fields in (("unknown", F.array_except("fields", contract)),
                               ("missing", F.array_except(contract, "fields")))
    ])
    return (
        drift.groupBy("change", "field")
        .agg(F.count(F.lit(1)).alias("events"), F.min("_kafka_timestamp").alias("first_seen"),
             F.max("_kafka_timestamp").alias("last_seen"))
        .orderBy("change", "field")
        .collect()
    )


def drift_table(rows: list) -> str:
    lines = ["| change | field | events | first seen | last seen |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['change']} | `{r['field']}` | {r['events']:,} | {r['first_seen']} | {r['last_seen']} |" for r in rows]
    return "\n".join(lines)


@dg.multi_asset_check(
    name="raw_schema_drift",
    specs=[
        dg.AssetCheckSpec(
            "event_fields_match_contract", asset=RAW_KEYS[kind], blocking=False,
            description="the events as sent carry exactly the fields the contract names: a field upstream added "
            "(kept in `_event`) or one it stopped sending is named with its number of events and since when",
        )
        for kind in TOPIC_KINDS
    ],
    can_subset=True,
)
def raw_schema_drift(context: dg.AssetCheckExecutionContext, pyspark: PySparkResource, lake: LakeResource):
    """A warning, not a stop: unknown fields are kept in raw, and cleaning treats a missing one as null."""
    spark = pyspark.spark_session
    kinds = [key.asset_key.path[-1] for key in context.selected_asset_check_keys]
    tables = {kind: delta.read_table(spark, lake.path("raw", kind)) for kind in kinds}
    fit_code_generation_to(list(tables.values()))

    def check(kind: str) -> dg.AssetCheckResult:
        rows = field_drift(tables[kind], kind)
        fields = {change: sorted(r["field"] for r in rows if r["change"] == change) for change in ("unknown", "missing")}
        return dg.AssetCheckResult(
            asset_key=RAW_KEYS[kind], check_name="event_fields_match_contract", passed=not rows,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "unknown_fields": ", ".join(fields["unknown"]) or "none",
                "missing_fields": ", ".join(fields["missing"]) or "none",
                "drift": dg.MetadataValue.md(drift_table(rows)),
            },
        )

    with ThreadPoolExecutor(len(kinds)) as pool:
        yield from pool.map(check, kinds)


raw_checks = [raw_completeness, raw_schema_drift]
