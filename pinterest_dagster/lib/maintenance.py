"""Delta table maintenance: compaction (OPTIMIZE), VACUUM, and what a table's files and log look like.

A micro-batch commits a few small files to each table it writes, every few seconds: without compaction a
table holds thousands of files after a day, and every read and MERGE plans against all of them. Delta
keeps the files that a compaction or an overwrite replaced, for time travel, until VACUUM deletes those
older than the retention. Delta writes a checkpoint of its log every `delta.checkpointInterval` commits
(10 by default), and when it does it also deletes log entries older than `delta.logRetentionDuration`
(30 days), so the log stays bounded by itself; `TableFacts` reports its files and how far the last
checkpoint is behind.

Everything here is Delta SQL, so it runs on an in-process session and on Spark Connect alike.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pinterest_dagster.lib import delta

# Files at least this large are left alone by OPTIMIZE: compaction rewrites the small files of the micro-batches,
# not the files an earlier compaction wrote (Delta's default is 1 GB, which would rewrite a whole day's
# partition every time). A micro-batch writes at most about 10 MB to a raw partition (1,000,000 events, the
# most a run takes; 5.1-9.5 MB in the soak of 2026-12-06 15:31), and a pass every 5 minutes at 11,600 events/s
# writes 24-36 MB files. With 64 MB, the 5-minute files were compacted again at the next pass, and that pass's
# raw turns took twice as long (docs/benchmarks.md).
COMPACTED_FILE_BYTES = 16 * 1024 * 1024
# A day that no micro-batch writes any more (a raw partition of an earlier `_kafka_date`) left with more than
# CLOSED_DAY_MAX_FILES files is compacted once more with Delta's own threshold, into files of up to 1 GB:
# frequent passes leave a busy day with many files of 16 MB and more (about 290 a day at 11,600 events/s with
# a pass every 5 minutes, docs/operations.md); hourly passes leave about 24, which stay as they are. One such
# partition per pass, the most crowded: a day's partition at the full rate is some 10 GB to rewrite, and
# micro-batches wait meanwhile.
CLOSED_DAY_FILE_BYTES = 1024 * 1024 * 1024
CLOSED_DAY_MAX_FILES = 50
DELTA_DEFAULT_RETAIN_HOURS = 168.0  # Delta refuses a shorter VACUUM retention unless told otherwise


@dataclass(frozen=True)
class TableFacts:
    version: int
    files: int  # data files of the current version
    bytes: int
    log_files: int  # files in _delta_log: commits, checksums, checkpoints
    log_bytes: int
    last_checkpoint: int | None  # the version of the newest checkpoint of the log, None before the first

    @property
    def commits_since_checkpoint(self) -> int:
        return self.version - (self.last_checkpoint if self.last_checkpoint is not None else -1)

    def metadata(self, suffix: str) -> dict[str, int]:
        return {f"files_{suffix}": self.files, f"bytes_{suffix}": self.bytes,
                f"log_files_{suffix}": self.log_files, f"log_bytes_{suffix}": self.log_bytes}


CHECKPOINT_FILE = re.compile(r"(\d+)\.checkpoint\b")


def table_facts(spark: SparkSession, path: str) -> TableFacts:
    detail = spark.sql(f"DESCRIBE DETAIL {delta.sql_path(path)}").select("numFiles", "sizeInBytes").first()
    # The log's files, listed by Spark so that the lake may be on S3 (binaryFile reads no content here).
    log = (spark.read.format("binaryFile").load(f"{path.rstrip('/')}/_delta_log")
           .select(F.element_at(F.split("path", "/"), -1).alias("name"), "length").collect())
    checkpoints = [int(m.group(1)) for m in (CHECKPOINT_FILE.match(r["name"]) for r in log) if m]
    return TableFacts(version=delta.latest_commit(spark, path).version, files=int(detail["numFiles"]),
                      bytes=int(detail["sizeInBytes"]), log_files=len(log), log_bytes=sum(r["length"] for r in log),
                      last_checkpoint=max(checkpoints, default=None))


@dataclass(frozen=True)
class Compaction:
    files_removed: int
    files_added: int
    partitions: int  # partitions that had small files to compact


def compact(spark: SparkSession, path: str, codec: str | None = None, closed_before: dt.date | None = None) -> Compaction:
    """OPTIMIZE the table: its files under 16 MB, partition by partition, into files of up to 1 GB, compressed
    with `codec` (the session's default, snappy, unless given: raw's files are zstd). With `closed_before`
    (the table is partitioned by Kafka date and partition, like raw), the most crowded partition of the days
    before it, if it holds more than CLOSED_DAY_MAX_FILES files, is compacted again into files of up to 1 GB.

    A compaction changes no data, so a micro-batch's commit never conflicts with it unless both touched
    the same file (a MERGE that rewrote a file being compacted); the later commit is then tried again."""
    routine = _optimize(spark, path, codec, COMPACTED_FILE_BYTES)
    crowded = crowded_closed_partition(spark, path, closed_before) if closed_before is not None else None
    if crowded is None:
        return routine
    closed = _optimize(spark, path, codec, CLOSED_DAY_FILE_BYTES,
                       f" WHERE _kafka_date = DATE'{crowded[0]}' AND _kafka_partition = {crowded[1]}")
    return Compaction(*(a + b for a, b in zip(dataclasses.astuple(routine), dataclasses.astuple(closed))))


def _optimize(spark: SparkSession, path: str, codec: str | None, min_file_bytes: int, where: str = "") -> Compaction:
    spark.conf.set("spark.databricks.delta.optimize.minFileSize", str(min_file_bytes))
    with delta.parquet_compression(spark, codec):
        row = delta.retry_conflicts(
            lambda: spark.sql(f"OPTIMIZE {delta.sql_path(path)}{where}")
            .select("metrics.numFilesRemoved", "metrics.numFilesAdded", "metrics.partitionsOptimized").first(),
            f"compacting {path}",
        )
    return Compaction(files_removed=int(row["numFilesRemoved"] or 0), files_added=int(row["numFilesAdded"] or 0),
                      partitions=int(row["partitionsOptimized"] or 0))


def files_per_partition(files: list[str]) -> dict[str, int]:
    """Data files per partition directory (`_kafka_date=.../_kafka_partition=...`), or per table ("(table)")
    when it is not partitioned."""
    counts: Counter[str] = Counter()
    for path in files:
        counts["/".join(p for p in path.split("/") if "=" in p) or "(table)"] += 1
    return dict(counts)


def crowded_closed_partition(spark: SparkSession, path: str, closed_before: dt.date) -> tuple[str, int] | None:
    """(Kafka date, Kafka partition) of the partition before `closed_before` with the most data files, if it
    holds more than CLOSED_DAY_MAX_FILES after the routine compaction; the files are listed from the Delta
    log, no data is read."""
    files = delta.read_table(spark, path).where(f"_kafka_date < DATE'{closed_before.isoformat()}'").inputFiles()
    directory, most = max(files_per_partition(files).items(), key=lambda item: item[1], default=("", 0))
    if most <= CLOSED_DAY_MAX_FILES:
        return None
    values = dict(part.split("=", 1) for part in directory.split("/"))
    return values["_kafka_date"], int(values["_kafka_partition"])


def vacuum(spark: SparkSession, path: str, retain_hours: float) -> int:
    """Delete the files no version younger than `retain_hours` needs; returns how many were deleted.

    The current version never loses a file; time travel to versions older than the retention does.
    Below Delta's 7 days a VACUUM is refused unless its safety check is off: a reader or writer that
    started on a version that old would lose its files (here, every writer is in the `lake_writes`
    pool, so none runs during maintenance)."""
    if retain_hours < DELTA_DEFAULT_RETAIN_HOURS:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    hours = f"RETAIN {retain_hours:g} HOURS"
    deleted = spark.sql(f"VACUUM {delta.sql_path(path)} {hours} DRY RUN").count()
    if deleted:
        spark.sql(f"VACUUM {delta.sql_path(path)} {hours}").collect()
    return deleted
