"""The event-order rule (docs/architecture.md section 4): of the events of one key, the one with the highest
(`_kafka_timestamp`, `_offset`) wins, within a batch (`latest_per_key`) and across batches, where a
MERGE updates a stored row only when the batch's event is newer (`newer_event_condition`). The result
is the same in whatever order micro-batches commit, and a replayed batch changes nothing."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

EVENT_ORDER_COLUMNS = ("_kafka_timestamp", "_offset")
# What a cleaned table keeps of its winning event: the order columns, and the partition beside the offset.
EVENT_LINEAGE_COLUMNS = ("_kafka_timestamp", "_partition", "_offset")


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


def newer_event_condition(source: str = "s", target: str = "t") -> str:
    """SQL: the `source` row's event comes after the `target` row's in the event order.

    A target row without event order columns (written before they were kept) counts as older.
    """
    first, *rest = EVENT_ORDER_COLUMNS
    later, ties = [f"{source}.`{first}` > {target}.`{first}`"], [f"{source}.`{first}` = {target}.`{first}`"]
    for column in rest:
        later.append(" AND ".join([*ties, f"{source}.`{column}` > {target}.`{column}`"]))
        ties.append(f"{source}.`{column}` = {target}.`{column}`")
    return f"({target}.`{first}` IS NULL OR " + " OR ".join(f"({c})" for c in later) + ")"
