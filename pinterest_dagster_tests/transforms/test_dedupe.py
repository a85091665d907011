"""One row per key, the latest event wins (docs/architecture.md section 4): the rule, and the cleaned rows built on it."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from pinterest_dagster.defs.clean.assets import latest_cleaned
from pinterest_dagster.transforms.dedupe import latest_per_key, newer_event_condition
from pinterest_dagster.transforms.parse import SOURCE_COLUMNS
from pinterest_dagster_tests.transforms.test_clean import RAW

T0 = dt.datetime(2024, 1, 1, 12, 0, 0)


def t(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def events(spark, rows):
    """(key, payload, kafka timestamp, partition, offset) rows."""
    return spark.createDataFrame(rows, "key int, payload string, _kafka_timestamp timestamp, _partition int, _offset long")


def winners(df, key="key"):
    return sorted((row["key"], row["payload"]) for row in latest_per_key(df, key).collect())


def test_the_latest_kafka_timestamp_wins_even_at_a_lower_offset(spark):
    df = events(spark, [(1, "old", t(0), 0, 9), (1, "new", t(5), 0, 3), (2, "only", t(1), 0, 4)])
    assert winners(df) == [(1, "new"), (2, "only")]


def test_on_equal_timestamps_the_higher_offset_wins(spark):
    df = events(spark, [(1, "first", t(0), 0, 3), (1, "second", t(0), 0, 4), (1, "zeroth", t(0), 0, 2)])
    assert winners(df) == [(1, "second")]


def test_the_rows_keep_their_columns_and_the_key_may_be_an_expression(spark):
    df = events(spark, [(1, "a", t(0), 0, 1), (11, "b", t(1), 0, 2), (21, "c", t(2), 0, 3)])
    latest = latest_per_key(df, F.col("key") % 10)  # all three share key 1
    assert latest.columns == df.columns
    assert [(row["key"], row["payload"]) for row in latest.collect()] == [(21, "c")]


def raw_pins(spark, rows):
    """raw/pin rows: the valid pin with each override, plus Kafka metadata (timestamp s, offset)."""
    columns = SOURCE_COLUMNS["pin"]
    schema = ", ".join(f"`{c}` string" for c in columns) + ", _kafka_timestamp timestamp, _partition int, _offset long"
    data = [tuple({**RAW["pin"], **override}[c] for c in columns) + (t(seconds), 0, offset)
            for override, seconds, offset in rows]
    return spark.createDataFrame(data, schema)


def test_cleaned_rows_are_the_latest_events_cleaned(spark):
    df = raw_pins(spark, [
        ({"index": "7", "follower_count": "1k", "title": "Old title"}, 0, 1),
        ({"index": "7", "follower_count": "2.5k", "title": "No Title Data Available"}, 9, 2),
        ({"index": "8", "follower_count": "User Info Error"}, 3, 3),
        ({"index": "8", "follower_count": "3M"}, 1, 4),  # a higher offset, an older event: not the latest
    ])
    rows = {row["ind"]: row for row in latest_cleaned("pin", df).collect()}
    assert sorted(rows) == [7, 8]
    # The winner's own values, cleaned: no field comes from an older event.
    assert (rows[7]["follower_count"], rows[7]["title"]) == (2500, None)
    assert rows[8]["follower_count"] is None


def test_raw_keys_that_parse_to_the_same_ind_are_one_key(spark):
    df = raw_pins(spark, [({"index": "7"}, 0, 1), ({"index": " 7"}, 1, 2), ({"index": "07", "category": "art"}, 2, 3)])
    parsed = {row["index"]: row["k"] for row in df.select("index", F.col("index").try_cast("int").alias("k")).collect()}
    assert set(parsed.values()) == {7}  # what the contract's key parsing makes of them
    assert [(row["ind"], row["category"]) for row in latest_cleaned("pin", df).collect()] == [(7, "art")]


ORDER_SCHEMA = "k int, _kafka_timestamp timestamp, _offset long"


def newer_pairs(spark, source_rows, target_rows):
    """The (source k, target k) pairs where the source event is newer by the merge condition."""
    s = spark.createDataFrame(source_rows, ORDER_SCHEMA).alias("s")
    tt = spark.createDataFrame(target_rows, ORDER_SCHEMA).alias("t")
    return sorted((r[0], r[1]) for r in s.crossJoin(tt).where(newer_event_condition()).select("s.k", "t.k").collect())


def test_a_merge_replaces_a_stored_row_only_with_a_newer_event(spark):
    stored = [(1, t(5), 10)]
    incoming = [(10, t(6), 1), (11, t(5), 11), (12, t(5), 10), (13, t(5), 9), (14, t(4), 99)]
    # Later timestamp wins whatever the offset; the same timestamp falls to the offset; the same event is not newer.
    assert newer_pairs(spark, incoming, stored) == [(10, 1), (11, 1)]


def test_a_stored_row_without_event_order_columns_counts_as_older(spark):
    assert newer_pairs(spark, [(10, t(1), 1)], [(1, None, None)]) == [(10, 1)]
