"""raw -> cleaned: one row per post key `ind`, every cleaning rule applied, latest event wins."""

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pinterest_dagster.lib.batch_scope import IncrementalConfig, batch_scope, full_refresh_scope
from pinterest_dagster.lib.io_managers import FULL_REFRESH_OUTPUT, write_mode_metadata
from pinterest_dagster.lib.pools import LAKE_WRITES
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.transforms import clean_geo, clean_pin, clean_user
from pinterest_dagster.transforms.dedupe import EVENT_LINEAGE_COLUMNS, latest_per_key
from pinterest_dagster.transforms.parse import KEY_COLUMN, events_as_sent, parse_key

CLEANERS = {"pin": clean_pin, "geo": clean_geo, "user": clean_user}

DESCRIPTIONS = {
    "pin": "One row per pin (`ind`): placeholders and blank strings as null, follower_count as an integer "
    "(`306k` -> 306000, `1.5k` -> 1500, `3M` -> 3000000), save_location as the path only, downloaded 0/1.",
    "geo": "One row per post (`ind`): country, coordinates = [latitude, longitude], timestamp (UTC).",
    "user": "One row per post (`ind`): user_name = first + last name, age, date_joined (UTC).",
}
LINEAGE_NOTE = (" After the contract columns: the winning event's `_kafka_timestamp`, `_partition` and `_offset`,"
                " which a micro-batch's merge compares with its own events (only a newer event replaces a row).")


def latest_cleaned(kind: str, raw: DataFrame) -> DataFrame:
    """Cleaned rows of `raw`, one per `ind`: the event with the highest (_kafka_timestamp, _offset),
    followed by its lineage columns.

    Deduplicated first, then cleaned: on 1,000,000 raw pin events of 11,154 keys this took a write of
    cleaned/pin from 4.0 s to 1.5 s (the cleaning rules ran on every event before).
    """
    return CLEANERS[kind](latest_per_key(raw, parse_key(F.col(KEY_COLUMN[kind]))), keep=EVENT_LINEAGE_COLUMNS)


def cleaned_asset(kind: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["cleaned", kind],
        ins={"raw": dg.AssetIn(["raw", kind])},
        group_name="cleaned",
        kinds={"spark", "delta"},
        pool=LAKE_WRITES,
        description=DESCRIPTIONS[kind] + LINEAGE_NOTE,
        metadata=write_mode_metadata("merge", ("ind",), newer_events_only=True),
        # A micro-batch merges cleaned/pin right after ingestion: it is the table whose freshness users watch.
        op_tags={"dagster/priority": "1" if kind == "pin" else "0"},
    )
    def _cleaned(
        context: dg.AssetExecutionContext, config: IncrementalConfig, raw: DataFrame,
        pyspark: PySparkResource, lake: LakeResource,
    ):
        spark = pyspark.spark_session
        if config.full_refresh:
            # A rebuild reads the events as sent, so it applies today's rules to every field they carried.
            return dg.Output(latest_cleaned(kind, events_as_sent(full_refresh_scope(spark, raw), kind)),
                             metadata=FULL_REFRESH_OUTPUT)
        # The batch's own events, deduplicated within the batch; the merge keeps a stored row that is newer.
        return latest_cleaned(kind, batch_scope(context, spark, lake, raw))

    return _cleaned


cleaned_assets = [cleaned_asset(kind) for kind in CLEANERS]
