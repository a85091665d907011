"""The checks of the analytics and realtime tables (one row per group, no null; popularity agrees with
cleaned/pin), on tiny tables."""

from __future__ import annotations

from datetime import datetime

from pinterest_dagster.defs.aggregate.checks import group_metrics, group_result
from pinterest_dagster.defs.realtime.checks import popularity_agreement, trends_agreement, trends_shape
from pinterest_dagster.transforms.aggregate import AGGREGATES


def result(spark, name, rows, schema):
    return group_result(name, group_metrics(spark.createDataFrame(rows, schema), AGGREGATES[name].group_by))


def test_one_row_per_group_without_nulls_passes_and_a_second_row_or_a_null_fails(spark):
    schema = "country string, category string, category_count long"
    good = result(spark, "top_category_by_country", [("France", "art", 3), ("Peru", "travel", 2)], schema)
    assert good.passed and good.metadata["rows_beyond_one_per_group"].value == 0
    twice = result(spark, "top_category_by_country", [("France", "art", 3), ("France", "diy", 3)], schema)
    assert not twice.passed and twice.metadata["rows_beyond_one_per_group"].value == 1
    null_group = result(spark, "top_category_by_country", [("France", "art", 3), (None, "art", 9)], schema)
    assert not null_group.passed and null_group.metadata["rows_with_nulls"].value == 1
    null_measure = result(spark, "top_category_by_country", [("France", None, 3)], schema)
    assert not null_measure.passed


def test_groups_of_two_columns_and_the_one_row_table(spark):
    schema = "age_group string, post_year int, median_follower_count double"
    rows = [("18-24", 2015, 10.0), ("18-24", 2016, 12.0), ("25-35", 2015, 1.0)]
    assert result(spark, "median_followers_by_age_group_and_join_year", rows, schema).passed
    assert not result(spark, "median_followers_by_age_group_and_join_year", [*rows, ("18-24", 2015, 3.0)], schema).passed
    schema = "country string, follower_count long"
    assert result(spark, "top_country_by_followers", [("France", 5)], schema).passed
    assert result(spark, "top_country_by_followers", [], schema).passed  # an empty lake
    assert not result(spark, "top_country_by_followers", [("France", 5), ("Peru", 5)], schema).passed


def test_poster_popularity_agrees_with_cleaned_pin_only_when_every_poster_and_pin_is_counted(spark):
    cleaned = spark.createDataFrame([(1, "ann"), (2, "ann"), (3, "bob"), (4, None)], "ind long, poster_name string")
    popularity = spark.createDataFrame([("ann", 2), ("bob", 1)], "poster_name string, pin_count long")
    assert popularity_agreement(popularity, cleaned) == {"posters_missing": 0, "cleaned_pins_with_a_poster": 3, "pins_counted": 3}
    behind = spark.createDataFrame([("ann", 2)], "poster_name string, pin_count long")
    assert popularity_agreement(behind, cleaned)["posters_missing"] == 1


def test_category_trends_have_one_row_per_window_and_category(spark):
    schema = "window_start timestamp, category string, pin_count long"
    rows = [(datetime(2026, 1, 1, 0, 0), "art", 2), (datetime(2026, 1, 1, 0, 1), "art", 1)]
    assert trends_shape(spark.createDataFrame(rows, schema)) == {"rows": 2, "windows_and_categories": 2,
                                                                 "rows_with_nulls_or_no_pins": 0}
    twice = trends_shape(spark.createDataFrame([*rows, (datetime(2026, 1, 1, 0, 0), "art", 5)], schema))
    assert twice["rows"] == 3 and twice["windows_and_categories"] == 2
    assert trends_shape(spark.createDataFrame([(datetime(2026, 1, 1), None, 0)], schema))["rows_with_nulls_or_no_pins"] == 1


def test_category_trends_agree_with_cleaned_pin_only_when_every_cleaned_pins_window_is_counted(spark):
    """A cleaned pin is counted in the window of its Kafka time; the trends may count more (earlier events)."""
    cleaned = spark.createDataFrame(
        [(1, "art", datetime(2026, 1, 1, 0, 0, 10)), (2, "art", datetime(2026, 1, 1, 0, 0, 50)),
         (3, "diy", datetime(2026, 1, 1, 0, 1, 5)), (4, None, datetime(2026, 1, 1, 0, 2))],
        "ind long, category string, _kafka_timestamp timestamp")
    schema = "window_start timestamp, category string, pin_count long"
    trends = [(datetime(2026, 1, 1, 0, 0), "art", 3), (datetime(2026, 1, 1, 0, 1), "diy", 1)]
    assert trends_agreement(spark.createDataFrame(trends, schema), cleaned) == {
        "cleaned_pins_with_a_category": 3, "windows_missing": 0, "windows_undercounted": 0}
    short = [(datetime(2026, 1, 1, 0, 0), "art", 1), (datetime(2026, 1, 1, 0, 1), "diy", 1)]
    assert trends_agreement(spark.createDataFrame(short, schema), cleaned)["windows_undercounted"] == 1
    wrong_window = [(datetime(2026, 1, 1, 0, 0), "art", 2), (datetime(2026, 1, 1, 0, 2), "diy", 1)]
    assert trends_agreement(spark.createDataFrame(wrong_window, schema), cleaned)["windows_missing"] == 1
