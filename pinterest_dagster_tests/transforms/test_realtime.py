"""Real-time metrics on tiny DataFrames of cleaned pin events."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import functions as F

from pinterest_dagster.transforms.realtime import (
    CATEGORY_TRENDS_COLUMNS, POSTER_PIN_STATE_COLUMNS, POSTER_PIN_STATE_KEYS, POSTER_POPULARITY_COLUMNS,
    category_trends, poster_pin_state, poster_popularity, poster_popularity_from_state,
)

SCHEMA = "ind int, poster_name string, follower_count long, category string, _kafka_timestamp timestamp, _offset long"


def events(spark, rows):
    return spark.createDataFrame(rows, SCHEMA)


def t(second: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, 1, 12, minute, second)


def test_poster_popularity_counts_distinct_pins_and_keeps_the_latest_follower_count(spark):
    df = events(spark, [
        (1, "Ann", 100, "art", t(1), 0),
        (1, "Ann", 120, "art", t(5), 7),     # same pin posted again: one distinct pin
        (2, "Ann", 150, "travel", t(3), 9),  # higher offset but older timestamp: not the latest
        (3, "Bob", None, "art", t(2), 1),
        (4, None, 999, "art", t(9), 2),      # no poster: not in the table
    ])
    rows = {r["poster_name"]: r.asDict() for r in poster_popularity(df).collect()}
    assert poster_popularity(df).columns == POSTER_POPULARITY_COLUMNS
    assert rows["Ann"] == {"poster_name": "Ann", "follower_count": 120, "pin_count": 2,
                           "top_category": "art", "last_seen_at": t(5)}
    assert rows["Bob"]["follower_count"] is None and rows["Bob"]["pin_count"] == 1
    assert set(rows) == {"Ann", "Bob"}


def test_poster_top_category_tie_goes_to_the_alphabetically_first(spark):
    df = events(spark, [(1, "Ann", 1, "travel", t(1), 0), (2, "Ann", 1, "art", t(2), 1)])
    assert poster_popularity(df).first()["top_category"] == "art"


def test_category_trends_count_events_per_one_minute_tumbling_window(spark):
    df = events(spark, [
        (1, "Ann", 1, "art", t(0, 0), 0),
        (1, "Ann", 1, "art", t(59, 0), 1),
        (2, "Bob", 1, "art", t(0, 1), 2),
        (3, "Bob", 1, "travel", t(30, 1), 3),
        (4, "Bob", 1, None, t(31, 1), 4),
    ])
    result = category_trends(df)
    assert result.columns == CATEGORY_TRENDS_COLUMNS
    assert sorted(tuple(r) for r in result.collect()) == [
        (t(0, 0), "art", 2), (t(0, 1), "art", 1), (t(0, 1), "travel", 1),
    ]


def combined_state(*states):
    """What merging state rows into the stored ones does (POSTER_PIN_STATE_MERGE: the greatest wins)."""
    union = states[0]
    for state in states[1:]:
        union = union.unionByName(state)
    return union.groupBy(*POSTER_PIN_STATE_KEYS).agg(
        F.max("last_seen_at").alias("last_seen_at"), F.max("latest_follower").alias("latest_follower"))


POPULARITY_EVENTS = [
    (1, "Ann", 100, "art", t(1), 0),
    (2, "Ann", None, "travel", t(2), 1),
    (1, "Ann", 130, "art", t(7), 5),
    (3, "Ann", 120, "travel", t(4), 3),
    (3, "Ann", 125, None, t(6), 4),
    (4, "Bob", 7, "art", t(3), 2),
]


def test_poster_popularity_from_the_states_of_two_batches_in_either_order_is_the_popularity_of_all(spark):
    first, second = events(spark, POPULARITY_EVENTS[:3]), events(spark, POPULARITY_EVENTS[3:])
    everything = sorted(map(tuple, poster_popularity(events(spark, POPULARITY_EVENTS)).collect()))
    for states in ([first, second], [second, first], [first, second, second]):  # the last: a replay
        state = combined_state(*(poster_pin_state(batch) for batch in states))
        assert sorted(map(tuple, poster_popularity_from_state(state).collect())) == everything


def test_poster_pin_state_has_one_row_per_poster_pin_and_category_with_the_latest_follower_event(spark):
    state = poster_pin_state(events(spark, POPULARITY_EVENTS))
    assert state.columns == POSTER_PIN_STATE_COLUMNS
    rows = {(r["poster_name"], r["ind"], r["category"]): r for r in state.collect()}
    assert set(rows) == {("Ann", 1, "art"), ("Ann", 2, "travel"), ("Ann", 3, "travel"), ("Ann", 3, None),
                         ("Bob", 4, "art")}
    assert rows[("Ann", 1, "art")]["latest_follower"]["follower_count"] == 130
    assert rows[("Ann", 1, "art")]["last_seen_at"] == t(7)
    assert rows[("Ann", 2, "travel")]["latest_follower"] is None
