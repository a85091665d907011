"""raw -> cleaned: one row per post key `ind`, every cleaning rule applied, latest event wins."""

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pinterest_dagster.lib.ingestion import OffsetRange, events_in, ranges_ingested_by, run_group_id
from pinterest_dagster.lib.io_managers import write_mode_metadata
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.lib.spark import COMPILED_CODE_FROM_ROWS, fit_code_generation
from pinterest_dagster.transforms import clean_geo, clean_pin, clean_user
from pinterest_dagster.transforms.dedupe import latest_per_key
from pinterest_dagster.transforms.incremental import rows_sharing
from pinterest_dagster.transforms.parse import KEY_COLUMN, parse_key

CLEANERS = {"pin": clean_pin, "geo": clean_geo, "user": clean_user}

DESCRIPTIONS = {
    "pin": "One row per pin (`ind`): placeholders and blank strings as null, follower_count as an integer "
    "(`306k` -> 306000, `1.5k` -> 1500, `3M` -> 3000000), save_location as the path only, downloaded 0/1.",
    "geo": "One row per post (`ind`): country, coordinates = [latitude, longitude], timestamp (UTC).",
    "user": "One row per post (`ind`): user_name = first + last name, age, date_joined (UTC).",
}


class IncrementalConfig(dg.Config):
    """By default a run merges what its own ingestion brought; `full_refresh` rebuilds from all of raw."""

    full_refresh: bool = False


def run_ranges(context: dg.AssetExecutionContext, spark, lake: LakeResource) -> list[OffsetRange]:
    """The offset ranges this run ingested: the ones its config names (a sensor's micro-batch, no
    query needed), else the ones the ingestion log records for its run group (a catch-up run)."""
    ingest_config = context.run.run_config.get("ops", {}).get("ingest_kafka_events", {}).get("config", {})
    if ingest_config.get("ranges"):
        return [OffsetRange(r["topic"], r["partition"], r["start"], r["end"]) for r in ingest_config["ranges"]]
    return ranges_ingested_by(spark, lake, run_group_id(context.run))


def batch_scope(context: dg.AssetExecutionContext, spark, lake: LakeResource, raw: DataFrame, config) -> DataFrame:
    """The raw rows of this run's micro-batch, or all of raw for a full refresh.

    Sets the session's code generation for the step's size: a full refresh reads all of raw.
    """
    if config.full_refresh:
        fit_code_generation(spark, COMPILED_CODE_FROM_ROWS)
        return raw
    ranges = run_ranges(context, spark, lake)
    fit_code_generation(spark, sum(r.size for r in ranges))
    return events_in(raw, ranges)


def latest_cleaned(kind: str, raw: DataFrame) -> DataFrame:
    """Cleaned rows of `raw`, one per `ind`: the event with the highest (_kafka_timestamp, _offset).

    Deduplicated first, then cleaned: on 1,000,000 raw pin events of 11,154 keys this took a write of
    cleaned/pin from 4.0 s to 1.5 s (the cleaning rules ran on every event before).
    """
    return CLEANERS[kind](latest_per_key(raw, parse_key(F.col(KEY_COLUMN[kind]))))


def cleaned_asset(kind: str) -> dg.AssetsDefinition:
    key_column = KEY_COLUMN[kind]

    @dg.asset(
        key=["cleaned", kind],
        ins={"raw": dg.AssetIn(["raw", kind])},
        group_name="cleaned",
        kinds={"spark", "delta"},
        description=DESCRIPTIONS[kind],
        metadata=write_mode_metadata("merge", ("ind",)),
        # A micro-batch merges cleaned/pin right after ingestion: it is the table whose freshness users watch.
        op_tags={"dagster/priority": "1" if kind == "pin" else "0"},
    )
    def _cleaned(
        context: dg.AssetExecutionContext, config: IncrementalConfig, raw: DataFrame,
        pyspark: PySparkResource, lake: LakeResource,
    ) -> DataFrame:
        batch = batch_scope(context, pyspark.spark_session, lake, raw, config)
        # Every event of a touched key takes part, so the latest one wins across batches too.
        events = raw if config.full_refresh else rows_sharing(raw, batch, parse_key(F.col(key_column)))
        return latest_cleaned(kind, events)

    return _cleaned


cleaned_assets = [cleaned_asset(kind) for kind in CLEANERS]
