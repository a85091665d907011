"""Delta Lake table operations shared by the IO manager and the ingestion: write modes, reads, facts.

Everything here goes through DataFrame writers and Delta SQL (`MERGE INTO`, `DESCRIBE HISTORY`), not
the `DeltaTable` Python API, so the same code runs on an in-process session and on Spark Connect.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from dagster import get_dagster_logger

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

WRITE_MODES = ("overwrite", "merge", "replace_where", "append")

# The tables that micro-batches MERGE into and that no query of the pipeline filters (cleaned, realtime and the
# poster state): Delta still counts each file's rows, but keeps no per-column statistics (minimum, maximum,
# nulls) of them, which serve file skipping only. Collecting them for every column of every file a MERGE
# rewrites is CPU spent on each micro-batch's critical path (docs/benchmarks.md, "Where those CPU-seconds go").
MERGED_TABLE_PROPERTIES = {"delta.dataSkippingNumIndexedCols": "0"}

T = TypeVar("T")


@dataclass(frozen=True)
class WriteResult:
    path: str
    version: int | None  # None: not looked up (`describe=False`)
    row_count: int | None = None  # rows in the table afterwards; not counted after a merge
    rows_inserted: int | None = None  # a merge's changes, from the MERGE's own result
    rows_updated: int | None = None


def sql_path(path: str) -> str:
    """A table path as Delta SQL names it: delta.`<path>`."""
    return "delta.`" + path.replace("`", "``") + "`"


# What Delta answers for a path that holds no table. Any other error (a relative path, which Delta SQL
# does not take, or storage that cannot be reached) is raised: taken for "no table", it would make a
# catch-up re-read every topic from offset 0.
MISSING_TABLE_ERRORS = {"DELTA_MISSING_DELTA_TABLE", "DELTA_PATH_DOES_NOT_EXIST", "PATH_NOT_FOUND"}


def table_exists(spark: SparkSession, path: str) -> bool:
    try:
        spark.sql(f"DESCRIBE DETAIL {sql_path(path)}").select("format").first()
    except AnalysisException as error:
        if error.getCondition() in MISSING_TABLE_ERRORS:
            return False
        raise
    return True


def read_table(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


# Delta's optimistic concurrency: a commit that finds another writer's commit in its way fails with one of
# these. The pools keep the pipeline's own writers apart (lib/pools.py); a writer outside them (a user's
# notebook, a maintenance job elsewhere) can still get in the way, and trying again against the table's
# new version is what Delta asks for.
CONFLICT_MARKERS = ("DELTA_CONCURRENT", "DELTA_METADATA_CHANGED", "DELTA_PROTOCOL_CHANGED",
                    "ConcurrentAppendException", "ConcurrentDeleteReadException", "ConcurrentDeleteDeleteException",
                    "ConcurrentTransactionException", "MetadataChangedException", "ProtocolChangedException")
CONFLICT_RETRIES = 3


def is_conflict(error: Exception) -> bool:
    return any(marker in str(error) for marker in CONFLICT_MARKERS)


def write_table(spark: SparkSession, df: DataFrame, path: str, mode: str, *args, **kwargs) -> WriteResult:
    """`_write_table`, tried again when a concurrent commit got in the way (`retry_conflicts`).

    Every write mode can be tried again: an overwrite, a replaceWhere and a MERGE recompute against the
    table's new version, and a commit that failed left nothing behind."""
    return retry_conflicts(lambda: _write_table(spark, df, path, mode, *args, **kwargs), f"writing {path} ({mode})")


def retry_conflicts(commit: Callable[[], T], what: str) -> T:
    """`commit()`, tried again up to CONFLICT_RETRIES times when another writer committed first; each retry
    is logged as a warning."""
    for attempt in range(1, CONFLICT_RETRIES + 2):
        try:
            return commit()
        except Exception as error:
            if attempt > CONFLICT_RETRIES or not is_conflict(error):
                raise
            first_line = str(error).strip().splitlines()[0][:300]
            get_dagster_logger().warning(
                f"Delta conflict {what}: another writer committed first: {first_line}; "
                f"trying again ({attempt} of {CONFLICT_RETRIES})"
            )
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def _write_table(
    spark: SparkSession,
    df: DataFrame,
    path: str,
    mode: str,
    merge_keys: tuple[str, ...] = (),
    replace_where: str | None = None,
    describe: bool = True,
    matched_condition: str | None = None,
    matched_update: dict[str, str] | None = None,
    partition_by: tuple[str, ...] = (),
    options: dict[str, str] | None = None,
) -> WriteResult:
    """Write `df` to the Delta table at `path`, creating it on first write.

    - overwrite: the table becomes `df` (full refresh; the schema may change).
    - merge: upsert on `merge_keys` (null-safe equality): new keys are inserted; a matching row is
      replaced, or only where `matched_condition` holds (SQL over `t`, the table, and `s`, the rows),
      or has the columns of `matched_update` set to their SQL expressions instead.
    - replace_where: atomically replace the rows matching `replace_where` with `df`, so writing the
      same slice twice leaves one copy (idempotent ingestion).
    - append: add the rows.

    A table created by this write is partitioned by `partition_by`. `options` are writer options: the
    `delta.*` ones become the table's properties when the write creates it (for example
    `delta.dataSkippingStatsColumns`), the others apply to the files it writes (`compression`).

    Returns the table's version and row count afterwards (for a merge: the rows it inserted and
    updated instead of a count of the whole table). With `describe=False` no query follows the write:
    neither version nor row count is looked up (a merge's changes still come with its result), which a
    micro-batch on its hot path can do without.
    """
    if mode not in WRITE_MODES:
        raise ValueError(f"unknown Delta write mode {mode!r}; expected one of {', '.join(WRITE_MODES)}")
    if mode == "merge" and not merge_keys:
        raise ValueError(f"merge into {path} needs merge keys")
    if mode == "replace_where" and not replace_where:
        raise ValueError(f"replace_where into {path} needs a predicate")

    whole_table = mode == "overwrite"  # afterwards the table holds exactly the rows written
    merged = {}  # a merge's changes, from the MERGE's own result row
    if mode == "merge":
        try:
            changes = _merge(spark, df, path, merge_keys, matched_condition, matched_update)
        except AnalysisException:
            # Asking first would cost a query on every write; only a missing table is answered by creating it.
            if table_exists(spark, path):
                raise
            writer(df, "append", partition_by, options).save(path)
            whole_table = True
        else:
            merged = {"rows_inserted": changes["num_inserted_rows"], "rows_updated": changes["num_updated_rows"]}
    elif mode == "replace_where":
        # On a missing table this creates it.
        writer(df, "overwrite", partition_by, options).option("replaceWhere", replace_where).save(path)
    elif mode == "overwrite":
        writer(df, "overwrite", partition_by, options).option("overwriteSchema", "true").save(path)
    else:
        writer(df, "append", partition_by, options).save(path)
    if not describe:
        return WriteResult(path=path, version=None, **merged)
    commit = latest_commit(spark, path)
    if merged:
        return WriteResult(path=path, version=commit.version, **merged)
    if whole_table and commit.operation == "WRITE" and "numOutputRows" in commit.metrics:
        # The rows this write wrote are the table's rows: no count of the table is needed.
        return WriteResult(path=path, version=commit.version, row_count=int(commit.metrics["numOutputRows"]))
    return describe_table(spark, path)


def replace_rows(spark: SparkSession, path: str, deleted: DataFrame, inserted: DataFrame) -> None:
    """In one commit, delete the table's rows equal (every column, nulls alike) to a row of `deleted` and
    insert the rows of `inserted` the table does not hold. Rows that other writers add meanwhile are left
    alone, where an overwrite with the rows read before would drop them. Not retried on a conflict: a
    caller that computed `deleted` from what it read reads again (`retry_conflicts` around both)."""
    columns = deleted.columns
    if inserted.columns != columns:
        raise ValueError(f"replacing rows of {path}: deleted has columns {columns}, inserted {inserted.columns}")
    marked = deleted.withColumn("_deleted", F.lit(True)).unionByName(inserted.withColumn("_deleted", F.lit(False)))
    names, values = ", ".join(f"`{c}`" for c in columns), ", ".join(f"s.`{c}`" for c in columns)
    _merge_statement(spark, marked, path, tuple(columns),
                     f"WHEN MATCHED AND s._deleted THEN DELETE "
                     f"WHEN NOT MATCHED AND NOT s._deleted THEN INSERT ({names}) VALUES ({values})")


PARQUET_CODEC = "spark.sql.parquet.compression.codec"


@contextmanager
def parquet_compression(spark: SparkSession, codec: str | None) -> Iterator[None]:
    """Files written in the block are compressed with `codec` (the session's default again afterwards):
    those a compaction writes too. A writer's `compression` option reaches its own files only, and Delta's
    OPTIMIZE writes its files with the session's codec (snappy unless set)."""
    if codec is None:
        yield
        return
    before = spark.conf.get(PARQUET_CODEC, None)
    spark.conf.set(PARQUET_CODEC, codec)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(PARQUET_CODEC)
        else:
            spark.conf.set(PARQUET_CODEC, before)


def writer(df: DataFrame, mode: str, partition_by: tuple[str, ...] = (), options: dict[str, str] | None = None):
    """A Delta writer; partitioning and `delta.*` options take effect when the write creates the table."""
    builder = df.write.format("delta").mode(mode).options(**(options or {}))
    return builder.partitionBy(*partition_by) if partition_by else builder


def _merge(spark: SparkSession, df: DataFrame, path: str, keys: tuple[str, ...],
           matched_condition: str | None = None, matched_update: dict[str, str] | None = None):
    """MERGE `df` into the table; returns the MERGE's result row (num_inserted_rows, num_updated_rows...)."""
    when = f" AND ({matched_condition})" if matched_condition else ""
    update = ", ".join(f"`{c}` = {e}" for c, e in matched_update.items()) if matched_update else "*"
    return _merge_statement(spark, df, path, keys,
                            f"WHEN MATCHED{when} THEN UPDATE SET {update} WHEN NOT MATCHED THEN INSERT *")


def _merge_statement(spark: SparkSession, source: DataFrame, path: str, keys: tuple[str, ...], clauses: str):
    """`MERGE INTO` the table (`t`) from `source` (`s`, a temporary view for the statement) on the null-safe
    equality of `keys`, with the WHEN `clauses`; returns the MERGE's result row."""
    view = f"merge_source_{uuid.uuid4().hex}"
    source.createOrReplaceTempView(view)
    on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    try:
        return spark.sql(f"MERGE INTO {sql_path(path)} AS t USING {view} AS s ON {on} {clauses}").first()
    finally:
        spark.catalog.dropTempView(view)


@dataclass(frozen=True)
class Commit:
    version: int
    operation: str  # WRITE, MERGE...
    metrics: dict[str, str]  # Delta's operationMetrics: numOutputRows, numTargetRowsInserted...


def latest_commit(spark: SparkSession, path: str) -> Commit:
    row = spark.sql(f"DESCRIBE HISTORY {sql_path(path)} LIMIT 1").select("version", "operation", "operationMetrics").first()
    return Commit(version=int(row["version"]), operation=row["operation"], metrics=dict(row["operationMetrics"] or {}))


def describe_table(spark: SparkSession, path: str) -> WriteResult:
    """The table's current version and row count (answered from the Delta log statistics)."""
    return WriteResult(path=path, version=latest_commit(spark, path).version, row_count=read_table(spark, path).count())


def ensure_table(spark: SparkSession, path: str, schema, partition_by: tuple[str, ...] = (),
                 options: dict[str, str] | None = None) -> None:
    """Create an empty table with `schema` when none exists, so readers never meet a missing path."""
    if not table_exists(spark, path):
        writer(spark.createDataFrame([], schema), "append", partition_by, options).save(path)
