"""Real-time popularity metrics (DESIGN.md section 4, `realtime/`), from cleaned pin events.

Inputs are cleaned pin rows that still carry `_kafka_timestamp` and `_offset` (one row per event,
not deduplicated), so the metrics can say when something was seen, not only what it is now.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

POSTER_POPULARITY_COLUMNS = ["poster_name", "follower_count", "pin_count", "top_category", "last_seen_at"]
CATEGORY_TRENDS_COLUMNS = ["window_start", "category", "pin_count"]
TREND_WINDOW = "1 minute"


def poster_popularity(pin_events: DataFrame) -> DataFrame:
    """Per poster: latest known follower_count, distinct pins seen, their top category, last event time.

    The top category is the one with most distinct pins, a tie going to the alphabetically first.
    """
    posters = pin_events.where(F.col("poster_name").isNotNull())
    latest_first = F.struct(F.col("_kafka_timestamp"), F.col("_offset"))
    known_followers = posters.where(F.col("follower_count").isNotNull())
    stats = posters.groupBy("poster_name").agg(
        F.count_distinct("ind").alias("pin_count"),
        F.max("_kafka_timestamp").alias("last_seen_at"),
    )
    followers = known_followers.groupBy("poster_name").agg(
        F.max_by("follower_count", latest_first).alias("follower_count")
    )
    return (
        stats.join(followers, "poster_name", "left")
        .join(top_category_per_poster(posters), "poster_name", "left")
        .select(*POSTER_POPULARITY_COLUMNS)
    )


def top_category_per_poster(posters: DataFrame) -> DataFrame:
    counts = (
        posters.where(F.col("category").isNotNull())
        .groupBy("poster_name", "category")
        .agg(F.count_distinct("ind").alias("pins"))
    )
    best_first = Window.partitionBy("poster_name").orderBy(F.col("pins").desc(), F.col("category"))
    return (
        counts.withColumn("rank", F.row_number().over(best_first))
        .where("rank = 1")
        .select("poster_name", F.col("category").alias("top_category"))
    )


def trend_window_start(timestamp) -> F.Column:
    """Start of the 1-minute tumbling window an event time falls in."""
    return F.window(timestamp, TREND_WINDOW).start


def category_trends(pin_events: DataFrame) -> DataFrame:
    """Pin events per category per 1-minute tumbling window of Kafka timestamp."""
    return (
        pin_events.where(F.col("category").isNotNull())
        .groupBy(trend_window_start("_kafka_timestamp").alias("window_start"), "category")
        .agg(F.count(F.lit(1)).alias("pin_count"))
        .select(*CATEGORY_TRENDS_COLUMNS)
    )
