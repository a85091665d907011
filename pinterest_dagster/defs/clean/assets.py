"""raw -> cleaned: one row per post key `ind`, every cleaning rule applied, latest event wins."""

from __future__ import annotations

import dagster as dg
from pyspark.sql import DataFrame

from pinterest_dagster.lib.io_managers import write_mode_metadata
from pinterest_dagster.transforms import clean_geo, clean_pin, clean_user
from pinterest_dagster.transforms.dedupe import EVENT_ORDER_COLUMNS, latest_per_key

CLEANERS = {"pin": clean_pin, "geo": clean_geo, "user": clean_user}

DESCRIPTIONS = {
    "pin": "One row per pin (`ind`): placeholders and blank strings as null, follower_count as an integer "
    "(`306k` -> 306000, `1.5k` -> 1500, `3M` -> 3000000), save_location as the path only, downloaded 0/1.",
    "geo": "One row per post (`ind`): country, coordinates = [latitude, longitude], timestamp (UTC).",
    "user": "One row per post (`ind`): user_name = first + last name, age, date_joined (UTC).",
}


def latest_cleaned(kind: str, raw: DataFrame) -> DataFrame:
    """Cleaned rows of `raw`, one per `ind`: the event with the highest (_kafka_timestamp, _offset)."""
    return latest_per_key(CLEANERS[kind](raw, keep=EVENT_ORDER_COLUMNS))


def cleaned_asset(kind: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["cleaned", kind],
        ins={"raw": dg.AssetIn(["raw", kind])},
        group_name="cleaned",
        kinds={"spark", "delta"},
        description=DESCRIPTIONS[kind],
        metadata=write_mode_metadata("merge", ("ind",)),
    )
    def _cleaned(raw: DataFrame) -> DataFrame:
        return latest_cleaned(kind, raw)

    return _cleaned


cleaned_assets = [cleaned_asset(kind) for kind in CLEANERS]
