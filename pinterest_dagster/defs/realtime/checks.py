"""Checks of the realtime tables, beside them: each agrees with `cleaned/pin`, and the trends have one row per
window and category. They read whole tables, so the daily `batch_job` and
`rebuild_job` run them; a micro-batch does not (streaming_job selects no checks)."""

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pinterest_dagster.lib import delta
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.transforms.realtime import trend_window_start


def popularity_agreement(popularity: DataFrame, cleaned_pin: DataFrame) -> dict[str, int]:
    """How `realtime/poster_popularity` stands against `cleaned/pin`: every poster of a cleaned pin has a
    row, and the pins counted are at least the cleaned pins with a poster (a poster's `pin_count` counts
    every pin seen under that name, a cleaned pin only under its latest one)."""
    posted = cleaned_pin.where(F.col("poster_name").isNotNull())
    missing = posted.select("poster_name").distinct().join(popularity.select("poster_name"), "poster_name", "left_anti")
    return {
        "posters_missing": missing.count(),
        "cleaned_pins_with_a_poster": posted.count(),
        "pins_counted": popularity.agg(F.coalesce(F.sum("pin_count"), F.lit(0))).first()[0],
    }


@dg.asset_check(asset=dg.AssetKey(["realtime", "poster_popularity"]), name="agrees_with_cleaned_pin",
                description="Every poster of a cleaned pin has a row, and the pins counted cover the cleaned pins.")
def poster_popularity_agrees_with_cleaned_pin(pyspark: PySparkResource, lake: LakeResource) -> dg.AssetCheckResult:
    spark = pyspark.spark_session
    metrics = popularity_agreement(delta.read_table(spark, lake.path("realtime", "poster_popularity")),
                                   delta.read_table(spark, lake.path("cleaned", "pin")))
    passed = metrics["posters_missing"] == 0 and metrics["pins_counted"] >= metrics["cleaned_pins_with_a_poster"]
    return dg.AssetCheckResult(passed=passed, metadata=metrics)


def trends_shape(trends: DataFrame) -> dict[str, int]:
    row = trends.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct("window_start", "category").alias("windows_and_categories"),
        F.coalesce(F.sum((F.col("window_start").isNull() | F.col("category").isNull() | F.col("pin_count").isNull()
                          | (F.col("pin_count") <= 0)).cast("int")), F.lit(0)).alias("rows_with_nulls_or_no_pins"),
    ).first()
    return row.asDict()


@dg.asset_check(asset=dg.AssetKey(["realtime", "category_trends"]), name="one_row_per_window_and_category",
                description="One row per (window_start, category), with no null and at least one pin.")
def category_trends_shape(pyspark: PySparkResource, lake: LakeResource) -> dg.AssetCheckResult:
    metrics = trends_shape(delta.read_table(pyspark.spark_session, lake.path("realtime", "category_trends")))
    passed = metrics["rows"] == metrics["windows_and_categories"] and metrics["rows_with_nulls_or_no_pins"] == 0
    return dg.AssetCheckResult(passed=passed, metadata=metrics)


def trends_agreement(trends: DataFrame, cleaned_pin: DataFrame) -> dict[str, int]:
    """How `realtime/category_trends` stands against `cleaned/pin`: a cleaned pin is its latest event, which
    the trends counted in the window of its Kafka time; so every (window, category) of the cleaned pins that
    have a category has a row, counting at least those pins (the trends count every event, a pin's earlier
    ones too)."""
    pins = (cleaned_pin.where(F.col("category").isNotNull())
            .groupBy(trend_window_start("_kafka_timestamp").alias("window_start"), "category")
            .agg(F.count(F.lit(1)).alias("cleaned_pins")))
    joined = pins.join(trends.select("window_start", "category", "pin_count"), ["window_start", "category"], "left")
    row = joined.agg(
        F.coalesce(F.sum("cleaned_pins"), F.lit(0)).alias("cleaned_pins_with_a_category"),
        F.coalesce(F.sum(F.col("pin_count").isNull().cast("int")), F.lit(0)).alias("windows_missing"),
        F.coalesce(F.sum((F.col("pin_count") < F.col("cleaned_pins")).cast("int")), F.lit(0)).alias("windows_undercounted"),
    ).first()
    return {name: int(value) for name, value in row.asDict().items()}


@dg.asset_check(asset=dg.AssetKey(["realtime", "category_trends"]), name="agrees_with_cleaned_pin",
                description="Every (window, category) of a cleaned pin, by its Kafka time, has a row counting at "
                "least the cleaned pins in it.")
def category_trends_agree_with_cleaned_pin(pyspark: PySparkResource, lake: LakeResource) -> dg.AssetCheckResult:
    spark = pyspark.spark_session
    metrics = trends_agreement(delta.read_table(spark, lake.path("realtime", "category_trends")),
                               delta.read_table(spark, lake.path("cleaned", "pin")))
    return dg.AssetCheckResult(passed=metrics["windows_missing"] == 0 and metrics["windows_undercounted"] == 0,
                               metadata=metrics)


realtime_checks = [poster_popularity_agrees_with_cleaned_pin, category_trends_shape, category_trends_agree_with_cleaned_pin]
