"""How far each raw check has read: the daily checks read what arrived since they last passed, not all of raw.

Per check and (topic, partition), `_meta/raw_checks` keeps the offset the check's window ended at the last
time it passed, and when that evaluation began. The next evaluation reads the offsets from there on, plus
the ranges the ingestion log records as ingested again since then (`lib/offsets.since_last_check`); a
check that never passed, a new partition, a recreated topic and a run tagged `FULL_CHECK_TAG` (every
`rebuild_job`) read everything.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import log_path
from pinterest_dagster.lib.offsets import Interval
from pinterest_dagster.lib.resources import LakeResource

FULL_CHECK_TAG = "pinterest/raw_checks"  # value "full": the raw checks of the run read all of raw

STATE_SCHEMA = T.StructType([
    T.StructField("check", T.StringType()),
    T.StructField("topic", T.StringType()),
    T.StructField("partition", T.IntegerType()),
    T.StructField("checked_up_to", T.LongType()),
    T.StructField("checked_at", T.TimestampType()),
])


STATE_TABLE = ("_meta", "raw_checks")  # layer, name (maintenance compacts and vacuums it with the others)


def state_path(lake: LakeResource) -> str:
    return lake.path(*STATE_TABLE)


@dataclass(frozen=True)
class CheckedSince:
    """Per (topic, partition): the offset a check's window ended at when it last passed, and the ranges
    ingested again since that evaluation began. A partition missing from `up_to` was never checked."""

    up_to: dict[tuple[str, int], int] = field(default_factory=dict)
    rewritten: dict[tuple[str, int], list[Interval]] = field(default_factory=dict)


def checked_since(spark: SparkSession, lake: LakeResource, check: str, topic: str) -> CheckedSince:
    path = state_path(lake)
    if not delta.table_exists(spark, path) or not delta.table_exists(spark, log_path(lake)):
        return CheckedSince()
    state = delta.read_table(spark, path).where((F.col("check") == check) & (F.col("topic") == topic))
    up_to = {(r.topic, r.partition): r.checked_up_to for r in state.collect()}
    if not up_to:
        return CheckedSince()
    # Compared in Spark, where both times are stored the same way: no time zone conversion on the way.
    log = delta.read_table(spark, log_path(lake)).where(F.col("topic") == topic)
    since = (log.join(state.select("partition", "checked_at"), "partition")
             .where(F.col("ingested_at") >= F.col("checked_at"))
             .select("partition", "start_offset", "end_offset").distinct())
    rewritten = defaultdict(list)
    for r in since.collect():
        rewritten[(topic, r.partition)].append((r.start_offset, r.end_offset))
    return CheckedSince(up_to, dict(rewritten))


def record_passed(spark: SparkSession, lake: LakeResource, check: str, passed: dict[tuple[str, int], int],
                  began: datetime) -> None:
    """Where the check's window ended for each (topic, partition) it passed on, in an evaluation begun at `began`.

    A MERGE on (check, topic, partition): another step may record its check meanwhile (the completeness and drift
    checks launched together from the UI run as parallel steps), and an overwrite of the table with what this
    one had read dropped what that one wrote."""
    if not passed:
        return
    rows = [(check, topic, partition, up_to, began) for (topic, partition), up_to in sorted(passed.items())]
    delta.write_table(spark, spark.createDataFrame(rows, STATE_SCHEMA), state_path(lake), "merge",
                      merge_keys=("check", "topic", "partition"), describe=False)
