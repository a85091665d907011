"""One row per source key: the latest event wins (DESIGN.md section 4)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

EVENT_ORDER_COLUMNS = ("_kafka_timestamp", "_offset")


def latest_per_key(df: DataFrame, key: Column | str = "ind") -> DataFrame:
    """Keep, for each `key` value, the row with the highest (`_kafka_timestamp`, `_offset`); same columns as `df`.

    Offsets order the events of one key because a key always goes to the same partition; the Kafka
    timestamp comes first so an event produced later wins even when it reached Kafka later.
    `key` may be an expression (the raw key column parsed), so raw events can be deduplicated before
    they are cleaned: cleaning is most of the work, and only the winners need it.
    """
    key = F.col(key) if isinstance(key, str) else key
    newest_first = Window.partitionBy(key).orderBy(*(F.col(c).desc() for c in EVENT_ORDER_COLUMNS))
    return df.withColumn("_rank", F.row_number().over(newest_first)).where(F.col("_rank") == 1).drop("_rank")
