"""Kafka messages to raw rows: split every event into accepted (raw/<kind>) or rejected (raw/rejects).

docs/architecture.md sections 3 and 4. Accepted rows keep the source columns as typed in the event: strings stay
strings, so a bad value is preserved exactly and only the cleaning step decides what it means.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

SOURCE_COLUMNS = {
    "pin": [
        "index",
        "unique_id",
        "title",
        "description",
        "poster_name",
        "follower_count",
        "tag_list",
        "is_image_or_video",
        "image_src",
        "downloaded",
        "save_location",
        "category",
    ],
    "geo": ["ind", "timestamp", "latitude", "longitude", "country"],
    "user": ["ind", "first_name", "last_name", "age", "date_joined"],
}
KEY_COLUMN = {"pin": "index", "geo": "ind", "user": "ind"}
KAFKA_METADATA_COLUMNS = ["_topic", "_partition", "_offset", "_kafka_timestamp"]
# `_event` is the event's JSON text exactly as sent: fields the contract does not name are kept in it, and
# every table can be rebuilt from it (`events_as_sent`). `_kafka_date` and `_kafka_partition` partition the
# raw tables. `_kafka_partition` is `_partition` again: as a partition column, it keeps every file (also a
# compacted one) to one Kafka partition's events, so a file's `_offset` statistics are those of one
# partition's offsets; and `_partition` stays a column with statistics, since Delta keeps none of a partition
# column and a read of several partitions' offset ranges (`_partition = p AND _offset ...` OR ...) skips
# files by both.
RAW_METADATA_COLUMNS = KAFKA_METADATA_COLUMNS + ["_ingested_at", "_event", "_kafka_date", "_kafka_partition"]
RAW_PARTITION_COLUMNS = ("_kafka_date", "_kafka_partition")
MICROS_PER_DAY = 86_400_000_000
REJECT_COLUMNS = KAFKA_METADATA_COLUMNS + ["value", "error"]
# The raw tables' column types as Spark names them (the source columns are strings), for their schema in the UI.
RAW_METADATA_TYPES = {"_topic": "string", "_partition": "int", "_offset": "bigint", "_kafka_timestamp": "timestamp",
                      "_ingested_at": "timestamp", "_event": "string", "_kafka_date": "date", "_kafka_partition": "int"}

NOT_UTF8 = "not valid UTF-8"
NOT_JSON = "not valid JSON"
NOT_OBJECT = "not a JSON object"


def parse_events(kafka_df: DataFrame, kind: str) -> tuple[DataFrame, DataFrame]:
    """Splits Kafka messages of one kind into `(accepted, rejects)`; every message lands in exactly one.

    `kafka_df` has the columns of Spark's Kafka source (`topic`, `partition`, `offset`, `timestamp`,
    `value`). Both outputs are lazy views of one classification, so a caller that writes both may
    want to persist `kafka_df` first.
    """
    events = classify_events(kafka_df, kind)
    return accepted_rows(events, kind), rejected_rows(events)


def accepted_rows(events: DataFrame, kind: str) -> DataFrame:
    """The raw/<kind> rows of classified events: the accepted ones, source columns as sent."""
    return events.where(F.col("error").isNull()).select(
        *[F.col("event")[name].alias(name) for name in SOURCE_COLUMNS[kind]],
        *KAFKA_METADATA_COLUMNS,
        F.current_timestamp().alias("_ingested_at"),
        F.col("value").alias("_event"),
        *[value.alias(name) for name, value in raw_partitions().items()],
    )


def raw_column_types(table: str) -> dict[str, str]:
    """Column -> type of raw/<table> (`pin`, `geo`, `user` or `rejects`), in the tables' column order."""
    if table == "rejects":
        return {**{name: RAW_METADATA_TYPES[name] for name in KAFKA_METADATA_COLUMNS}, "value": "string", "error": "string"}
    return {**{name: "string" for name in SOURCE_COLUMNS[table]}, **RAW_METADATA_TYPES}


def raw_partitions() -> dict[str, Column]:
    """The values of RAW_PARTITION_COLUMNS, from a raw row's Kafka lineage (ingestion and `make migrate`)."""
    return {"_kafka_date": kafka_date(F.col("_kafka_timestamp")), "_kafka_partition": F.col("_partition")}


def kafka_date(timestamp: Column) -> Column:
    """The raw tables' partition: the UTC date of the Kafka timestamp, whatever the session time zone."""
    return F.date_from_unix_date(F.floor(F.unix_micros(timestamp) / MICROS_PER_DAY).cast("int"))


def events_as_sent(raw: DataFrame, kind: str) -> DataFrame:
    """Raw rows with the source columns parsed again from `_event`, the event as sent.

    What a rebuild reads: a rule that needs a field the typed columns do not hold can take it from
    `_event`. Rows ingested before raw kept `_event` (null there) keep their typed columns.
    """
    parsed = F.from_json("_event", source_schema(kind))
    return raw.select(
        *[F.when(F.col("_event").isNotNull(), parsed[name]).otherwise(F.col(name)).alias(name)
          for name in SOURCE_COLUMNS[kind]],
        *[column for column in raw.columns if column not in SOURCE_COLUMNS[kind]],
    )


def rejected_rows(events: DataFrame) -> DataFrame:
    """The raw/rejects rows of classified events: Kafka lineage, the value as text and the reason."""
    return events.where(F.col("error").isNotNull()).select(*REJECT_COLUMNS)


def classify_events(kafka_df: DataFrame, kind: str) -> DataFrame:
    """Kafka metadata, the value as text, the event parsed to strings and its `error` (null if accepted)."""
    if kind not in SOURCE_COLUMNS:
        raise ValueError(f"unknown event kind {kind!r}; expected one of {', '.join(SOURCE_COLUMNS)}")
    key = KEY_COLUMN[kind]
    parsed = kafka_df.select(
        F.col("topic").alias("_topic"),
        F.col("partition").cast("int").alias("_partition"),
        F.col("offset").cast("long").alias("_offset"),
        F.col("timestamp").cast("timestamp").alias("_kafka_timestamp"),
        F.col("value").cast("string").alias("text"),
    ).withColumn("event", F.from_json("text", source_schema(kind)))
    return parsed.select(
        *KAFKA_METADATA_COLUMNS,
        # Broken bytes are shown as replacement characters so rejects stay readable and writable.
        F.make_valid_utf8("text").alias("value"),
        "event",
        event_error(F.col("text"), F.col("event")[key], key).alias("error"),
    )


def source_schema(kind: str) -> T.StructType:
    """All source columns as strings: Spark then renders numbers as their JSON text (437 -> "437")."""
    return T.StructType([T.StructField(name, T.StringType()) for name in SOURCE_COLUMNS[kind]])


def event_error(text: Column, key_value: Column, key: str) -> Column:
    """Why an event is rejected, or null when it is accepted.

    Validity is judged by Spark's strict VARIANT parser (`try_parse_json`), not by `from_json`, which
    silently accepts single quotes, NaN and duplicate keys. An object with a repeated key is ambiguous
    and therefore rejected as invalid JSON. Valid JSON whose first character is `{` is an object.
    Like every Jackson-based reader in Spark, both parsers stop after the first complete value, so
    text trailing a valid object is ignored rather than rejected.
    """
    return (
        F.when(~F.is_valid_utf8(text), F.lit(NOT_UTF8))
        .when(F.try_parse_json(text).isNull(), F.lit(NOT_JSON))
        .when(~text.rlike(r"^\s*\{"), F.lit(NOT_OBJECT))
        .when(parse_key(key_value).isNull(), F.lit(f"missing integer key '{key}'"))
    )


def parse_key(value: Column) -> Column:
    """The 64-bit integer key (`index`/`ind`) of an event, or null: real pin ids exceed 2^31.

    One definition for both layers: an event is accepted exactly when cleaning will give it an `ind`.
    `try_cast` takes "12" and 12 but not "abc", 1.5 or true, whatever `spark.sql.ansi.enabled` says.
    """
    return value.try_cast("bigint")
