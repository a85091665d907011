"""Checks of the raw tables.

- `raw_completeness` (blocking): nothing lost, nothing doubled, measured against Kafka's offsets: for
  every partition, each offset from the first one Kafka retains to the highest one ingested is in raw
  or rejects, once. Events retention deleted before ingestion are named (a warning).
- `raw_schema_drift` (warning): the events as sent carry the fields the contract names, and no others.

Both read what arrived since they last passed (lib/check_state.py); `rebuild_job` runs them on all of raw.
"""

import functools
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pinterest_dagster.defs.ingest.assets import RAW_KEYS
from pinterest_dagster.lib import check_state, delta
from pinterest_dagster.lib.check_state import FULL_CHECK_TAG, CheckedSince, checked_since
from pinterest_dagster.lib.ingestion import log_time, logged_ranges, partition_coverage
from pinterest_dagster.lib.pools import LAKE_WRITES
from pinterest_dagster.lib.offsets import (Interval, OffsetRange, PartitionCoverage, missing, ranges_text, since_last_check,
                                           size, union)
from pinterest_dagster.lib.streaming_runs import ranges_in_flight, run_group_id
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import fit_code_generation_to
from pinterest_dagster.settings import TOPIC_KINDS
from pinterest_dagster.transforms.parse import SOURCE_COLUMNS


def in_regions(regions: dict[int, list[Interval]]) -> Column:
    """Rows whose offset lies in `regions` (per partition of one topic): Delta skips the files whose offset
    statistics lie elsewhere, so a check reads the files of what it checks only."""
    return functools.reduce(lambda a, b: a | b, [
        (F.col("_partition") == partition) & (F.col("_offset") >= start) & (F.col("_offset") < end)
        for partition, intervals in sorted(regions.items()) for start, end in intervals
    ], F.lit(False))


def offsets_stored(spark, lake: LakeResource, kind: str, topic: str, regions: dict[int, list[Interval]],
                   everything: bool = False):
    """In one query: the topic's rows in raw/<kind> and raw/rejects, the distinct offsets they hold together,
    and of those the ones in `regions` (per partition: the offsets that must be there). Only the rows in
    `regions` are read, unless `everything`: then a row found twice outside them (below Kafka's first
    retained offset, say) counts as a duplicate too.

    Counted together, an event found in both tables is a duplicate as much as one found twice in either.
    """
    wanted = in_regions(regions)
    both = functools.reduce(DataFrame.unionByName, [
        delta.read_table(spark, lake.path("raw", table)).where((F.col("_topic") == topic) & (F.lit(everything) | wanted))
        .select(F.lit(table).alias("_table"), "_partition", "_offset")
        for table in (kind, "rejects")
    ])
    return both.agg(
        F.sum(F.when(F.col("_table") == kind, 1).otherwise(0)).alias("raw"),
        F.sum(F.when(F.col("_table") == "rejects", 1).otherwise(0)).alias("rejects"),
        F.count_distinct("_partition", "_offset").alias("offsets"),
        F.count_distinct(F.when(wanted, F.struct("_partition", "_offset"))).alias("in_regions"),
    ).first()


def regions_to_check(coverage: list[PartitionCoverage], since: CheckedSince, owned: list[OffsetRange] = ()) -> dict[int, list[Interval]]:
    """Per partition, the part of its window (`PartitionCoverage.window`) that arrived since the check last
    passed (`offsets.since_last_check`); all of it for a partition never checked or whose topic was recreated."""
    regions = {}
    for c in coverage:
        up_to = since.up_to.get((c.topic, c.partition))
        # Kafka's end went back (a recreated topic): its window is empty until the cursor is reset, and the
        # ranges ingested again after that are read as re-ingested ones.
        if up_to is not None and up_to > c.end:
            up_to = None
        regions[c.partition] = since_last_check(c.window(owned), up_to, since.rewritten.get((c.topic, c.partition), []))
    return regions


def verified_up_to(coverage: list[PartitionCoverage], owned: list[OffsetRange] = ()) -> dict[tuple[str, int], int]:
    """Where a passing check's window ended, per partition: below the ranges of runs in flight, which it left out."""
    return {(c.topic, c.partition): min([c.until, *(start for start, _ in c.intervals_of(owned))])
            for c in coverage if not c.moved_back}


def completeness(coverage: list[PartitionCoverage], stored, owned: list[OffsetRange] = (),
                 regions: dict[int, list[Interval]] | None = None) -> dict:
    """What the check reports for one topic, from its partitions' coverage and `offsets_stored` of `regions`
    (by default every partition's whole window); `owned` ranges belong to runs queued or running (a retry
    waiting for its turn), which will write them."""
    raw_rows, rejects_rows = stored["raw"] or 0, stored["rejects"] or 0  # a sum over no rows is null
    if regions is None:
        regions = {c.partition: c.window(owned) for c in coverage}
    expected = sum(size(intervals) for intervals in regions.values())
    gaps = [
        OffsetRange(c.topic, c.partition, start, end)
        for c in coverage for gap in c.gaps
        for start, end in missing(c.intervals_of(owned), *gap)
    ]
    lost = [OffsetRange(c.topic, c.partition, *g) for c in coverage for g in c.lost]
    return {
        "offsets_checked": expected,
        "missing_offsets": expected - (stored["in_regions"] or 0),
        "duplicate_offsets": raw_rows + rejects_rows - (stored["offsets"] or 0),
        "raw_rows_checked": raw_rows,
        "rejects_rows_checked": rejects_rows,
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
DRIFT_CHECK = "event_fields_match_contract"


@dg.multi_asset_check(
    name="raw_completeness",
    specs=[
        dg.AssetCheckSpec(
            COMPLETENESS_CHECK, asset=RAW_KEYS[kind], blocking=True,
            description="measured against Kafka: every offset from the first one Kafka retains up to the highest "
            "one ingested (except those of streaming runs queued or running) is in exactly one of raw and "
            "rejects, once (gaps and doubles block), read for what arrived since the check last passed (all of "
            "raw in rebuild_job); events that "
            "retention deleted before they were ingested, and a recreated topic, fail it as a warning",
        )
        for kind in TOPIC_KINDS
    ],
    can_subset=True,
    pool=LAKE_WRITES,  # it writes how far it has read (lib/check_state.py)
)
def raw_completeness(context: dg.AssetCheckExecutionContext, pyspark: PySparkResource, lake: LakeResource,
                     kafka: KafkaResource):
    """One step for the three topics, counted concurrently. Each reads what arrived since it last passed
    (`lib/check_state.py`), all of raw in a run tagged for a full check (every `rebuild_job`)."""
    began = log_time()
    spark = pyspark.spark_session
    kinds = [key.asset_key.path[-1] for key in context.selected_asset_check_keys]
    full = context.run.tags.get(FULL_CHECK_TAG) == "full"
    fit_code_generation_to([delta.read_table(spark, lake.path("raw", table)) for table in (*kinds, "rejects")])
    coverage = partition_coverage(spark, lake, kafka)
    # A streaming run waiting for its turn (a retry behind this run in the queue) will write its ranges.
    owned = ranges_in_flight(context.instance, except_group=run_group_id(context.run))

    def check(kind: str) -> tuple[dg.AssetCheckResult, dict]:
        topic = kafka.topic(kind)
        of_topic = [c for c in coverage if c.topic == topic]
        since = CheckedSince() if full else checked_since(spark, lake, COMPLETENESS_CHECK, topic)
        regions = regions_to_check(of_topic, since, owned)
        stored = offsets_stored(spark, lake, kind, topic, regions, everything=not since.up_to)
        counts = completeness(of_topic, stored, owned, regions)
        counts["read"] = "since the last passing check" if since.up_to else "all of raw"
        sound = counts["missing_offsets"] == 0 and counts["duplicate_offsets"] == 0
        return completeness_result(RAW_KEYS[kind], counts), verified_up_to(of_topic, owned) if sound else {}

    with ThreadPoolExecutor(len(kinds)) as pool:
        results = list(pool.map(check, kinds))
    check_state.record_passed(spark, lake, COMPLETENESS_CHECK, {k: v for _, passed in results for k, v in passed.items()}, began)
    yield from (result for result, _ in results)


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
            DRIFT_CHECK, asset=RAW_KEYS[kind], blocking=False,
            description="the events as sent carry exactly the fields the contract names: a field upstream added "
            "(kept in `_event`) or one it stopped sending is named with its number of events and since when",
        )
        for kind in TOPIC_KINDS
    ],
    can_subset=True,
    pool=LAKE_WRITES,  # it writes how far it has read (lib/check_state.py)
)
def raw_schema_drift(context: dg.AssetCheckExecutionContext, pyspark: PySparkResource, lake: LakeResource,
                     kafka: KafkaResource):
    """A warning, not a stop: unknown fields are kept in raw, and cleaning treats a missing one as null.
    Reads the events that arrived since its last evaluation (`lib/check_state.py`); all of them in a run
    tagged for a full check (every `rebuild_job`)."""
    began = log_time()
    spark = pyspark.spark_session
    kinds = [key.asset_key.path[-1] for key in context.selected_asset_check_keys]
    full = context.run.tags.get(FULL_CHECK_TAG) == "full"
    tables = {kind: delta.read_table(spark, lake.path("raw", kind)) for kind in kinds}
    fit_code_generation_to(list(tables.values()))
    logged = logged_ranges(spark, lake)

    def check(kind: str) -> tuple[dg.AssetCheckResult, dict]:
        topic = kafka.topic(kind)
        ingested = {key: union(intervals) for key, intervals in logged.items() if key[0] == topic}
        since = CheckedSince() if full else checked_since(spark, lake, DRIFT_CHECK, topic)
        regions = {partition: since_last_check(intervals, since.up_to.get((topic, partition)), since.rewritten.get((topic, partition), []))
                   for (_, partition), intervals in ingested.items()}
        events = tables[kind].where((F.col("_topic") == topic) & in_regions(regions)) if since.up_to else tables[kind]
        rows = field_drift(events, kind)
        fields = {change: sorted(r["field"] for r in rows if r["change"] == change) for change in ("unknown", "missing")}
        result = dg.AssetCheckResult(
            asset_key=RAW_KEYS[kind], check_name=DRIFT_CHECK, passed=not rows,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "unknown_fields": ", ".join(fields["unknown"]) or "none",
                "missing_fields": ", ".join(fields["missing"]) or "none",
                "drift": dg.MetadataValue.md(drift_table(rows)),
                "events_read": "since the last check" if since.up_to else "all of raw",
            },
        )
        # Drift is reported once, for the events that brought it: the next evaluation reads newer ones.
        return result, {key: intervals[-1][1] for key, intervals in ingested.items() if intervals}

    with ThreadPoolExecutor(len(kinds)) as pool:
        results = list(pool.map(check, kinds))
    check_state.record_passed(spark, lake, DRIFT_CHECK, {k: v for _, read in results for k, v in read.items()}, began)
    yield from (result for result, _ in results)


raw_checks = [raw_completeness, raw_schema_drift]
