"""raw/pin -> realtime: who is popular right now, updated by every streaming micro-batch."""

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pinterest_dagster.defs.clean.assets import IncrementalConfig, batch_scope
from pinterest_dagster.lib.io_managers import write_mode_metadata
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.transforms import clean_pin
from pinterest_dagster.transforms.dedupe import EVENT_ORDER_COLUMNS
from pinterest_dagster.transforms.incremental import rows_sharing
from pinterest_dagster.transforms.realtime import category_trends, poster_popularity, trend_window_start


def pin_events(raw_pin: DataFrame) -> DataFrame:
    """Cleaned pin events, one per Kafka message, with their event order columns."""
    return clean_pin(raw_pin, keep=EVENT_ORDER_COLUMNS)


# Each realtime table: what computes it from pin events, the scope a micro-batch recomputes (every
# event of a touched poster or window), and its merge keys.
REALTIME_TABLES = {
    "poster_popularity": (poster_popularity, lambda: F.col("poster_name"), ("poster_name",)),
    "category_trends": (category_trends, lambda: trend_window_start("_kafka_timestamp"), ("window_start", "category")),
}


def realtime_rows(name: str, raw_pin: DataFrame, batch: DataFrame | None) -> DataFrame:
    """The rows of realtime/<name> that `batch` touched, recomputed from all their raw pin events;
    with no batch, the whole table."""
    compute, scope, _ = REALTIME_TABLES[name]
    return compute(pin_events(raw_pin if batch is None else rows_sharing(raw_pin, batch, scope())))


@dg.asset(
    key=["realtime", "poster_popularity"],
    ins={"raw_pin": dg.AssetIn(["raw", "pin"])},
    deps=[dg.AssetKey(["cleaned", "pin"])],
    group_name="realtime",
    kinds={"spark", "delta"},
    metadata=write_mode_metadata("merge", REALTIME_TABLES["poster_popularity"][2]),
)
def poster_popularity_asset(
    context: dg.AssetExecutionContext, config: IncrementalConfig, raw_pin: DataFrame,
    pyspark: PySparkResource, lake: LakeResource,
) -> DataFrame:
    """Per poster: latest known follower_count, distinct pins seen (pin_count), the category of most of
    their pins (top_category) and the Kafka time of their last pin (last_seen_at). Each micro-batch
    recomputes the posters it saw from all their events, so a replayed batch changes nothing."""
    batch = batch_scope(context, pyspark.spark_session, lake, raw_pin, config)
    return realtime_rows("poster_popularity", raw_pin, None if config.full_refresh else batch)


@dg.asset(
    key=["realtime", "category_trends"],
    ins={"raw_pin": dg.AssetIn(["raw", "pin"])},
    group_name="realtime",
    kinds={"spark", "delta"},
    metadata=write_mode_metadata("merge", REALTIME_TABLES["category_trends"][2]),
)
def category_trends_asset(
    context: dg.AssetExecutionContext, config: IncrementalConfig, raw_pin: DataFrame,
    pyspark: PySparkResource, lake: LakeResource,
) -> DataFrame:
    """Pin events per category in 1-minute tumbling windows of Kafka timestamp (window_start, category,
    pin_count). Each micro-batch recounts the windows it touched from all their events."""
    batch = batch_scope(context, pyspark.spark_session, lake, raw_pin, config)
    return realtime_rows("category_trends", raw_pin, None if config.full_refresh else batch)


realtime_assets = [poster_popularity_asset, category_trends_asset]
