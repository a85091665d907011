"""Kafka offset ranges to raw Delta tables, exactly once (docs/architecture.md sections 4 and 5).

A run ingests explicit offset ranges `[start, end)` per (topic, partition). Every event of a range
lands in `raw/<kind>` or `raw/rejects`, and each table's slice for the range is replaced atomically
(Delta `replaceWhere`), so ingesting a range again - a retry, a re-execution - never duplicates a row.
After both tables are written the range is recorded in the ingestion log, which is what a catch-up
run reads to know where to start: a run that dies half-way is simply ingested again.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pinterest_dagster.lib import delta
from pinterest_dagster.lib import kafka as kafka_lib
from pinterest_dagster.lib.offsets import (
    Interval, OffsetRange, PartitionCoverage, coverage_of, lag_per_topic, ranges_to_ingest,
)
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.settings import TOPIC_KINDS
from pinterest_dagster.transforms.parse import (
    KAFKA_METADATA_COLUMNS, RAW_PARTITION_COLUMNS, accepted_rows, classify_events, rejected_rows,
)

LOG_SCHEMA = T.StructType([
    T.StructField("topic", T.StringType()),
    T.StructField("partition", T.IntegerType()),
    T.StructField("start_offset", T.LongType()),
    T.StructField("end_offset", T.LongType()),
    T.StructField("accepted", T.LongType()),
    T.StructField("rejected", T.LongType()),
    T.StructField("run_id", T.StringType()),
    T.StructField("ingested_at", T.TimestampType()),
])


# Raw tables are partitioned by the Kafka date and partition (transforms/parse.py), and Delta keeps file
# statistics of the Kafka lineage only: re-ingesting a range and reading a time window then open only the
# files whose offsets or times overlap (a file, compacted or not, holds one Kafka partition's offsets), and
# no write spends time on statistics of event text that no query filters on. raw/rejects, of every topic,
# is not partitioned. Files are zstd-compressed:
# with the events kept as sent, raw took 74.5 bytes per event with Spark's default (snappy), 41.8 with zstd
# (docs/architecture.md).
# Maintenance's compaction of raw (OPTIMIZE) must write zstd too: it writes with the session's codec, hence
# `delta.parquet_compression(spark, RAW_COMPRESSION)` around it (lib/maintenance.py).
RAW_TABLE_PROPERTIES = {"delta.dataSkippingStatsColumns": ",".join(KAFKA_METADATA_COLUMNS)}
RAW_COMPRESSION = "zstd"
REJECTS_LAYOUT = {"options": {**RAW_TABLE_PROPERTIES, "compression": RAW_COMPRESSION}}
RAW_LAYOUT = {"partition_by": RAW_PARTITION_COLUMNS, **REJECTS_LAYOUT}


def raw_layout(table: str) -> dict:
    return REJECTS_LAYOUT if table == "rejects" else RAW_LAYOUT


class LegacyRawTableError(RuntimeError):
    """A raw table written before raw kept the event as sent and was partitioned by Kafka date and partition."""


@dataclass(frozen=True)
class TopicCounts:
    """What ingesting one topic's ranges produced; `newest_us`: its newest event's Kafka time (epoch µs)."""

    read: int
    accepted: int
    rejected: int
    newest_us: int | None = None


class RangeCounts(NamedTuple):
    accepted: int
    rejected: int
    newest_us: int | None  # the Kafka time of the range's newest event, in epoch microseconds


LOG_TABLE = ("_meta", "ingested_ranges")
LOG_NAME = "/".join(LOG_TABLE)


def log_path(lake: LakeResource) -> str:
    return lake.path(*LOG_TABLE)


def logged_ranges(spark: SparkSession, lake: LakeResource) -> dict[tuple[str, int], list[Interval]]:
    """Every range the ingestion log records, per (topic, partition)."""
    path = log_path(lake)
    if not delta.table_exists(spark, path):
        return {}
    logged = defaultdict(list)
    for r in delta.read_table(spark, path).select("topic", "partition", "start_offset", "end_offset").distinct().collect():
        logged[(r.topic, r.partition)].append((r.start_offset, r.end_offset))
    return dict(logged)


def partition_coverage(spark: SparkSession, lake: LakeResource, kafka: KafkaResource) -> list[PartitionCoverage]:
    """What the lake holds of every pin/geo/user partition, against Kafka's retained offsets (lib/offsets.py)."""
    bounds = kafka_lib.offset_bounds(kafka.settings(), [kafka.topic(kind) for kind in TOPIC_KINDS])
    return coverage_of(logged_ranges(spark, lake), {(tp.topic, tp.partition): b for tp, b in bounds.items()})


def lag(spark: SparkSession, lake: LakeResource, kafka: KafkaResource) -> int:
    """Retained events in the pin/geo/user topics that the lake does not hold: not yet ingested, or in a gap."""
    return sum(c.lag for c in partition_coverage(spark, lake, kafka))


def topic_observations(kafka: KafkaResource, counts: dict[str, TopicCounts], positions: dict[tuple[str, int], int],
                       ingested: list[OffsetRange], owned: list[OffsetRange] = ()) -> dict[str, dict]:
    """Per kind, what an ingestion observes of its topic: `end_offset` (events produced, summed over the
    partitions), `lag_events` (not in the lake yet: `lag_per_topic`) and `lag_seconds` (while events wait,
    how old the newest event this ingestion wrote is; 0 when none waits)."""
    topics = {kafka.topic(kind): kind for kind in TOPIC_KINDS}
    ends = {(tp.topic, tp.partition): end for tp, (_, end) in kafka_lib.offset_bounds(kafka.settings(), list(topics)).items()}
    lag = lag_per_topic(ends, positions, ingested, owned)
    now_us = datetime.now(timezone.utc).timestamp() * 1e6
    observations = {}
    for topic, kind in topics.items():
        observation = {"end_offset": sum(end for (t, _), end in ends.items() if t == topic), "lag_events": lag.get(topic, 0)}
        newest = counts[kind].newest_us if kind in counts else None
        if not observation["lag_events"]:
            observation["lag_seconds"] = 0.0
        elif newest is not None:
            observation["lag_seconds"] = round(max(0.0, (now_us - newest) / 1e6), 3)
        observations[kind] = observation
    return observations


def plan_catch_up(
    spark: SparkSession, lake: LakeResource, kafka: KafkaResource, max_records_per_partition: int | None = None,
) -> list[OffsetRange]:
    """Every retained offset not ingested yet, gaps included, up to the current end of each partition.
    Events that retention removed before they were ingested cannot be read: each partition starts at
    its first retained offset. (The ingestion step also leaves what streaming owns; the benchmarks call this.)"""
    coverage = partition_coverage(spark, lake, kafka)
    return ranges_to_ingest(coverage, up_to={(c.topic, c.partition): c.end for c in coverage},
                            max_records_per_partition=max_records_per_partition)


def read_ranges(spark: SparkSession, kafka: KafkaResource, ranges: list[OffsetRange]) -> DataFrame:
    """The messages of exactly these ranges, through Spark's Kafka source.

    The source takes one (start, end) per partition: a partition with several ranges (a micro-batch
    healing a gap below its own range) is read in rounds, the i-th range of every partition in round i.
    """
    rounds: list[list[OffsetRange]] = []
    for (_, _), group in itertools.groupby(sorted(ranges), key=lambda r: (r.topic, r.partition)):
        for i, r in enumerate(group):
            if i == len(rounds):
                rounds.append([])
            rounds[i].append(r)
    return functools.reduce(DataFrame.unionByName, [_read_round(spark, kafka, batch) for batch in rounds])


def _read_round(spark: SparkSession, kafka: KafkaResource, ranges: list[OffsetRange]) -> DataFrame:
    starting, ending = defaultdict(dict), defaultdict(dict)
    for r in ranges:
        starting[r.topic][str(r.partition)] = r.start
        ending[r.topic][str(r.partition)] = r.end
    assign = {topic: sorted(int(p) for p in parts) for topic, parts in starting.items()}
    return (
        spark.read.format("kafka")
        .options(**kafka.spark_options())
        .option("assign", json.dumps(assign))
        .option("startingOffsets", json.dumps(starting))
        .option("endingOffsets", json.dumps(ending))
        .option("failOnDataLoss", "true")
        .load()
    )


def kind_of_topic(kafka: KafkaResource) -> dict[str, str]:
    return {kafka.topic(kind): kind for kind in TOPIC_KINDS}


def ingest_ranges(
    spark: SparkSession, lake: LakeResource, kafka: KafkaResource, ranges: list[OffsetRange], run_id: str = ""
) -> dict[str, TopicCounts]:
    """Ingest `ranges` into raw/<kind> and raw/rejects, then log them; returns the counts per kind.

    The raw tables exist afterwards even when no event arrived, so downstream tables can be built.
    A micro-batch pays for every Spark query it makes, so this makes few: one count of what goes
    where, one write per table the ranges concern (side by side), one append to the log.
    """
    kinds = kind_of_topic(kafka)
    unknown = {r.topic for r in ranges} - set(kinds)
    if unknown:
        raise ValueError(f"ranges name topics {sorted(unknown)} that are not {sorted(kinds)}")
    ranges = [r for r in ranges if r.size > 0]
    if not ranges:
        ensure_raw_tables(spark, lake)
        return {}

    messages = read_ranges(spark, kafka, ranges).persist()
    try:
        classified = {
            kind: classify_events(messages.where(F.col("topic") == kafka.topic(kind)), kind)
            for kind in sorted({kinds[r.topic] for r in ranges})
        }
        per_range = count_per_range(classified, ranges)
        counts = counts_per_kind(per_range, kinds)
        # table -> (rows, the predicate of the slice they replace). Every table's slice is replaced, even
        # by no rows: an event ingested again after a rule change (a key accepted now, rejected before)
        # must leave the table it was in, or it would sit in both.
        writes = {
            kind: (accepted_rows(events, kind), " OR ".join(r.predicate() for r in ranges if r.topic == kafka.topic(kind)))
            for kind, events in classified.items()
        }
        rejects = functools.reduce(DataFrame.unionByName, (rejected_rows(e) for e in classified.values()))
        writes["rejects"] = (rejects, " OR ".join(r.predicate() for r in ranges))
        # The tables are independent and a Delta commit mostly waits, so the writes run side by side.
        with ThreadPoolExecutor(max_workers=max(1, len(writes))) as pool:
            list(pool.map(lambda table: _replace_slice(spark, lake, table, *writes[table]), writes))
        ensure_raw_tables(spark, lake, skip=set(writes))
        _log_ranges(spark, lake, ranges, per_range, run_id)
        return counts
    finally:
        messages.unpersist()


def _replace_slice(spark: SparkSession, lake: LakeResource, table: str, rows: DataFrame, predicate: str) -> None:
    path = lake.path("raw", table)
    try:
        delta.write_table(spark, rows, path, "replace_where", replace_where=predicate, describe=False,
                          **raw_layout(table))
    except Exception as error:
        if table != "rejects" and delta.table_exists(spark, path) and not raw_is_current(spark, path):
            raise LegacyRawTableError(
                f"raw/{table} at {path} was written by an earlier version of the pipeline (no `_event` column, or "
                f"not partitioned by {' and '.join(f'`{c}`' for c in RAW_PARTITION_COLUMNS)}): run `make migrate` "
                "once (python -m pinterest_dagster.migrate)"
            ) from error
        raise


def raw_is_current(spark: SparkSession, path: str) -> bool:
    """Whether the raw table at `path` has the current layout: `_event`, and RAW_PARTITION_COLUMNS."""
    detail = spark.sql(f"DESCRIBE DETAIL {delta.sql_path(path)}").select("partitionColumns").first()
    return (list(detail["partitionColumns"]) == list(RAW_PARTITION_COLUMNS)
            and "_event" in delta.read_table(spark, path).columns)


def count_per_range(classified: dict[str, DataFrame], ranges: list[OffsetRange]) -> dict[OffsetRange, RangeCounts]:
    """Accepted and rejected events and the newest Kafka time per range, for every kind in one Spark query."""
    flags = functools.reduce(
        DataFrame.unionByName,
        (events.select("_topic", "_partition", "_offset", "_kafka_timestamp", F.col("error").isNull().alias("ok"))
         for events in classified.values()),
    )
    # A partition may have several ranges: each event counts for the one its offset lies in.
    range_start = F.coalesce(*[F.when(F.expr(r.predicate()), F.lit(r.start)) for r in ranges])
    totals = defaultdict(lambda: [0, 0, None])
    grouped = flags.groupBy("_topic", "_partition", range_start.alias("start"), "ok")
    # As epoch microseconds: a collected timestamp would be turned into this process's local time.
    newest = F.max(F.unix_micros("_kafka_timestamp")).alias("newest")
    for row in grouped.agg(F.count(F.lit(1)).alias("count"), newest).collect():
        total = totals[(row["_topic"], row["_partition"], row["start"])]
        total[0 if row["ok"] else 1] += row["count"]
        total[2] = max(filter(None, [total[2], row["newest"]]), default=None)
    return {r: RangeCounts(*totals.get((r.topic, r.partition, r.start), (0, 0, None))) for r in ranges}


def counts_per_kind(per_range: dict[OffsetRange, RangeCounts], kinds: dict[str, str]) -> dict[str, TopicCounts]:
    counts: dict[str, TopicCounts] = {}
    for r, (accepted, rejected, newest) in per_range.items():
        old = counts.get(kinds[r.topic], TopicCounts(0, 0, 0))
        counts[kinds[r.topic]] = TopicCounts(old.read + accepted + rejected, old.accepted + accepted,
                                             old.rejected + rejected, max(filter(None, [old.newest_us, newest]), default=None))
    return counts


def log_time() -> datetime:
    """Now, as the ingestion log stamps `ingested_at`: naive UTC. Whatever compares with those stamps (the
    log's coalescing cutoff, the raw checks' `checked_at`) takes its time from here, so the two agree."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _log_ranges(spark, lake, ranges, per_range, run_id) -> None:
    now = log_time()
    rows = [(r.topic, r.partition, r.start, r.end, per_range[r].accepted, per_range[r].rejected, run_id, now)
            for r in ranges]
    # One file, whatever the session's parallelism: a micro-batch adds one file to the log.
    delta.write_table(spark, spark.createDataFrame(rows, LOG_SCHEMA).coalesce(1), log_path(lake), "append", describe=False)


COALESCED = "coalesced"  # the run_id of a log row that stands for the contiguous ranges of several runs


@dataclass(frozen=True)
class LogCompaction:
    rows_before: int
    rows_after: int


def coalesce_log(spark: SparkSession, lake: LakeResource, older_than: datetime,
                 keep_groups: Callable[[set[str]], set[str]] = lambda groups: set()) -> LogCompaction:
    """Rewrite the ingestion log with the ranges logged before `older_than` coalesced: one row per run of
    contiguous offsets of a partition. Younger rows are kept as logged, with their run ids: the merge
    step of a catch-up or healing run looks up its run group's ranges by run id (`ranges_ingested_by`).
    So are, however old, the rows of the groups `keep_groups(run ids of the older rows)` returns: run groups
    that failed or are in flight, which a re-execution or a re-plan may still merge. A gap stays a gap.

    Micro-batches append to the log meanwhile: one MERGE deletes exactly the rows read and coalesced and
    inserts their coalesced rows, so a row appended after the read stays (an overwrite of the table with
    what was read lost it). A blind append does not conflict with the MERGE (Delta's WriteSerializable); a
    conflict with another rewrite reads the log again."""
    path = log_path(lake)
    if not delta.table_exists(spark, path):
        return LogCompaction(0, 0)
    return delta.retry_conflicts(lambda: _coalesce_log(spark, path, older_than, keep_groups), f"coalescing {path}")


def _coalesce_log(spark: SparkSession, path: str, older_than: datetime,
                  keep_groups: Callable[[set[str]], set[str]]) -> LogCompaction:
    rows = [tuple(r) for r in delta.read_table(spark, path).select(*LOG_SCHEMA.fieldNames()).collect()]
    kept = keep_groups({r[6] for r in rows if r[7] < older_than and r[6] != COALESCED})
    coalesced = coalesced_log_rows(rows, older_than, kept)
    if len(coalesced) < len(rows):
        read, rewritten = set(rows), set(coalesced)
        delta.replace_rows(spark, path, deleted=spark.createDataFrame(list(read - rewritten), LOG_SCHEMA),
                           inserted=spark.createDataFrame(list(rewritten - read), LOG_SCHEMA))
    return LogCompaction(len(rows), len(coalesced))


def coalesced_log_rows(rows: list[tuple], older_than: datetime, keep_groups: set[str] = frozenset()) -> list[tuple]:
    """The rows (LOG_SCHEMA order) with those ingested before `older_than` coalesced per partition, except
    those of the run groups `keep_groups`, kept as logged.

    A range logged twice (a retried run) counts once; accepted/rejected add up over the ranges merged."""
    young = [r for r in rows if r[7] >= older_than or r[6] in keep_groups]
    old = sorted({(r[0], r[1], r[2], r[3]): r for r in sorted(rows, key=lambda r: r[7])
                  if r[7] < older_than and r[6] not in keep_groups}.values(),
                 key=lambda r: (r[0], r[1], r[2], r[3]))
    merged: list[list] = []
    for topic, partition, start, end, accepted, rejected, _, ingested_at in old:
        last = merged[-1] if merged else None
        if last and (last[0], last[1]) == (topic, partition) and start <= last[3]:
            last[3] = max(last[3], end)
            last[4] += accepted or 0
            last[5] += rejected or 0
            last[7] = max(last[7], ingested_at)
        else:
            merged.append([topic, partition, start, end, accepted or 0, rejected or 0, COALESCED, ingested_at])
    return [tuple(r) for r in merged] + young


KAFKA_SOURCE_SCHEMA = T.StructType([
    T.StructField("key", T.BinaryType()),
    T.StructField("value", T.BinaryType()),
    T.StructField("topic", T.StringType()),
    T.StructField("partition", T.IntegerType()),
    T.StructField("offset", T.LongType()),
    T.StructField("timestamp", T.TimestampType()),
    T.StructField("timestampType", T.IntegerType()),
])


def ensure_raw_tables(spark: SparkSession, lake: LakeResource, skip: set[str] = frozenset()) -> None:
    """Empty raw tables for topics that never had an event, so downstream tables can still be built.

    `skip` names the tables (kinds, or "rejects") just written, which need no check.
    """
    no_messages = spark.createDataFrame([], KAFKA_SOURCE_SCHEMA)
    for kind in TOPIC_KINDS:
        if kind not in skip:
            delta.ensure_table(spark, lake.path("raw", kind), accepted_rows(classify_events(no_messages, kind), kind).schema,
                               **RAW_LAYOUT)
    if "rejects" not in skip:
        delta.ensure_table(spark, lake.path("raw", "rejects"), rejected_rows(classify_events(no_messages, "pin")).schema,
                           **REJECTS_LAYOUT)


def ranges_ingested_by(spark: SparkSession, lake: LakeResource, *group_ids: str) -> list[OffsetRange]:
    """The offset ranges that runs of these groups ingested."""
    if not delta.table_exists(spark, log_path(lake)):
        return []
    rows = (
        delta.read_table(spark, log_path(lake))
        .where(F.col("run_id").isin(list(group_ids)))
        .select("topic", "partition", "start_offset", "end_offset")
        .distinct()
        .collect()
    )
    return sorted(OffsetRange(r.topic, r.partition, r.start_offset, r.end_offset) for r in rows)


def events_in(raw: DataFrame, ranges: list[OffsetRange]) -> DataFrame:
    """The rows of a raw table that came from `ranges`."""
    return raw.where(" OR ".join(r.predicate() for r in ranges) or "false")
