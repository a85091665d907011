"""One row per source key: the latest event wins (DESIGN.md section 4)."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

EVENT_ORDER_COLUMNS = ("_kafka_timestamp", "_offset")


def latest_per_key(df: DataFrame, key: str = "ind") -> DataFrame:
    """Keep, for each `key`, the row with the highest (`_kafka_timestamp`, `_offset`); drop those two columns.

    Offsets order the events of one key because a key always goes to the same partition; the Kafka
    timestamp comes first so an event produced later wins even when it reached Kafka later.
    """
    newest_first = Window.partitionBy(key).orderBy(*(F.col(c).desc() for c in EVENT_ORDER_COLUMNS))
    return (
        df.withColumn("_rank", F.row_number().over(newest_first))
        .where(F.col("_rank") == 1)
        .drop("_rank", *EVENT_ORDER_COLUMNS)
    )
