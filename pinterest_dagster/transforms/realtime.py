"""Real-time popularity metrics (docs/architecture.md section 4, `realtime/`), from cleaned pin events.

Inputs are cleaned pin rows that still carry `_kafka_timestamp` and `_offset` (one row per event,
not deduplicated), so the metrics can say when something was seen, not only what it is now.

Poster popularity is kept exact without re-reading past events through a compact state: one row per
(poster, pin, category) seen (`poster_pin_state`). A batch's state rows merge into the stored ones with
`POSTER_PIN_STATE_MERGE` (the later time wins, the latest follower count wins), which gives the same
state in any order and twice over, and a poster's row is computed from their state rows alone
(`poster_popularity_from_state`).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

POSTER_POPULARITY_COLUMNS = ["poster_name", "follower_count", "pin_count", "top_category", "last_seen_at"]
POSTER_PIN_STATE_COLUMNS = ["poster_name", "ind", "category", "last_seen_at", "latest_follower"]
POSTER_PIN_STATE_KEYS = ("poster_name", "ind", "category")
# How a batch's state row combines with the stored one of the same (poster, pin, category); `greatest`
# skips nulls, and `latest_follower` is a struct ordered by its event order fields first.
POSTER_PIN_STATE_MERGE = {
    "last_seen_at": "greatest(t.last_seen_at, s.last_seen_at)",
    "latest_follower": "greatest(t.latest_follower, s.latest_follower)",
}
CATEGORY_TRENDS_COLUMNS = ["window_start", "category", "pin_count"]
TREND_WINDOW_SECONDS = 60
TREND_WINDOW = f"{TREND_WINDOW_SECONDS} seconds"


def poster_popularity(pin_events: DataFrame) -> DataFrame:
    """Per poster: latest known follower_count, distinct pins seen, their top category, last event time.

    The top category is the one with most distinct pins, a tie going to the alphabetically first.
    """
    return poster_popularity_from_state(poster_pin_state(pin_events))


def poster_pin_state(pin_events: DataFrame) -> DataFrame:
    """One row per (poster, pin, category) seen: when it was last seen, and its latest event that
    carried a follower count (`latest_follower`: _kafka_timestamp, _offset, follower_count)."""
    known_followers = F.when(
        F.col("follower_count").isNotNull(), F.struct("_kafka_timestamp", "_offset", "follower_count")
    )
    return (
        pin_events.where(F.col("poster_name").isNotNull())
        .groupBy(*POSTER_PIN_STATE_KEYS)
        .agg(F.max("_kafka_timestamp").alias("last_seen_at"), F.max(known_followers).alias("latest_follower"))
        .select(*POSTER_PIN_STATE_COLUMNS)
    )


def poster_popularity_from_state(state: DataFrame) -> DataFrame:
    """poster_popularity rows of the posters whose state rows `state` holds (all of them per poster)."""
    stats = state.groupBy("poster_name").agg(
        F.count_distinct("ind").alias("pin_count"),
        F.max("last_seen_at").alias("last_seen_at"),
        F.max("latest_follower").getField("follower_count").alias("follower_count"),
    )
    return stats.join(top_category_per_poster(state), "poster_name", "left").select(*POSTER_POPULARITY_COLUMNS)


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
