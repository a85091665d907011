"""Checks of the raw tables.

- `raw_completeness` (blocking): nothing lost, nothing doubled, measured against Kafka's offsets: for
  every partition, each offset from the first one Kafka retains to the highest one ingested is in raw
  or rejects, once. Events retention deleted before ingestion are named (a warning).
- `raw_schema_drift` (warning): the events as sent carry the fields the contract names, and no others.
"""

import functools
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pinterest_dagster.defs.ingest.assets import RAW_KEYS
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import partition_coverage, run_group_id
from pinterest_dagster.lib.offsets import OffsetRange, PartitionCoverage, missing, ranges_text, size
from pinterest_dagster.lib.streaming_runs import ranges_in_flight
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import fit_code_generation_to
from pinterest_dagster.settings import TOPIC_KINDS
from pinterest_dagster.transforms.parse import SOURCE_COLUMNS


def offsets_stored(spark, lake: LakeResource, kind: str, topic: str, coverage: list[PartitionCoverage] = (),
                   owned: list[OffsetRange] = ()):
    """The topic's rows in raw/<kind> and raw/rejects, the distinct offsets they hold together, and of those
    the ones in the window that must be there (`PartitionCoverage.window`: retained, up to the highest
    ingested, not owned by a run in flight), in one query.

    Counted together, an event found in both tables is a duplicate as much as one found twice in either.
    """
    both = functools.reduce(DataFrame.unionByName, [
        delta.read_table(spark, lake.path("raw", table)).where(F.col("_topic") == topic)
        .select(F.lit(table).alias("_table"), "_partition", "_offset")
        for table in (kind, "rejects")
    ])
    in_window = functools.reduce(lambda a, b: a | b, [
        (F.col("_partition") == c.partition) & (F.col("_offset") >= start) & (F.col("_offset") < end)
        for c in coverage if c.topic == topic for start, end in c.window(owned)
    ], F.lit(False))
    return both.agg(
        F.sum(F.when(F.col("_table") == kind, 1).otherwise(0)).alias("raw"),
        F.sum(F.when(F.col("_table") == "rejects", 1).otherwise(0)).alias("rejects"),
        F.count_distinct("_partition", "_offset").alias("offsets"),
        F.count_distinct(F.when(in_window, F.struct("_partition", "_offset"))).alias("in_window"),
    ).first()


def completeness(coverage: list[PartitionCoverage], stored, owned: list[OffsetRange] = ()) -> dict:
    """What the check reports for one topic, from its partitions' coverage and `offsets_stored`; `owned`
    ranges belong to runs queued or running (a retry waiting for its turn), which will write them."""
    raw_rows, rejects_rows = stored["raw"] or 0, stored["rejects"] or 0  # a sum over no rows is null
    expected = sum(size(c.window(owned)) for c in coverage)
    gaps = [
        OffsetRange(c.topic, c.partition, start, end)
        for c in coverage for gap in c.gaps
        for start, end in missing(c.intervals_of(owned), *gap)
    ]
    lost = [OffsetRange(c.topic, c.partition, *g) for c in coverage for g in c.lost]
    return {
        "retained_offsets_ingested_or_due": expected,
        "missing_offsets": expected - (stored["in_window"] or 0),
        "duplicate_offsets": raw_rows + rejects_rows - stored["offsets"],
        "raw_rows": raw_rows,
        "rejects_rows": rejects_rows,
        "gaps": ranges_text(gaps),
        "lost_to_retention": size((g.start, g.end) for g in lost),
        "lost_ranges": ranges_text(lost),
        "left_to_runs_in_flight": ranges_text(r for r in owned if r.topic in {c.topic for c in coverage}),
        "not_yet_ingested": sum(c.tail[1] - c.tail[0] for c in coverage if c.tail),
        "offsets_went_backwards": ", ".join(f"{c.topic}[{c.partition}]" for c in coverage if c.moved_back) or "none",
    }


def completeness_result(asset_key: dg.AssetKey, counts: dict) -> dg.AssetCheckResult:
    """Fails blocking on a missing or doubled retained offset; fails as a warning, which stops nothing, on
    events retention deleted before they were ingested or a recreated topic: reported, and streaming goes on."""
    broken = counts["missing_offsets"] != 0 or counts["duplicate_offsets"] != 0
    reported = counts["lost_to_retention"] > 0 or counts["offsets_went_backwards"] != "none"
    return dg.AssetCheckResult(
        asset_key=asset_key, check_name=COMPLETENESS_CHECK, passed=not broken and not reported,
        severity=dg.AssetCheckSeverity.ERROR if broken else dg.AssetCheckSeverity.WARN, metadata=counts,
    )


COMPLETENESS_CHECK = "every_retained_offset_once"


@dg.multi_asset_check(
    name="raw_completeness",
    specs=[
        dg.AssetCheckSpec(
            COMPLETENESS_CHECK, asset=RAW_KEYS[kind], blocking=True,
            description="measured against Kafka: every offset from the first one Kafka retains up to the highest "
            "one ingested (except those of streaming runs queued or running) is in exactly one of raw and "
            "rejects, once (gaps and doubles block); events that "
            "retention deleted before they were ingested, and a recreated topic, fail it as a warning",
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
    coverage = partition_coverage(spark, lake, kafka)
    # A streaming run waiting for its turn (a retry behind this run in the queue) will write its ranges.
    owned = ranges_in_flight(context.instance, except_group=run_group_id(context.run))

    def check(kind: str) -> dg.AssetCheckResult:
        topic = kafka.topic(kind)
        of_topic = [c for c in coverage if c.topic == topic]
        stored = offsets_stored(spark, lake, kind, topic, of_topic, owned)
        return completeness_result(RAW_KEYS[kind], completeness(of_topic, stored, owned))

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
