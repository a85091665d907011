"""raw -> cleaned: one row per post key `ind`, every cleaning rule applied, latest event wins.

The three cleaned tables are written by the step in `defs/merge/assets.py`, with the realtime tables;
this module says what each holds and how its rows are computed.
"""

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pinterest_dagster.lib.delta import MERGED_TABLE_PROPERTIES
from pinterest_dagster.lib.io_managers import write_mode_metadata
from pinterest_dagster.transforms import clean_geo, clean_pin, clean_user
from pinterest_dagster.transforms.dedupe import EVENT_LINEAGE_COLUMNS, latest_per_key
from pinterest_dagster.transforms.parse import KEY_COLUMN, events_as_sent, parse_key

CLEANERS = {"pin": clean_pin, "geo": clean_geo, "user": clean_user}
CLEANED_KEYS = {dg.AssetKey(["cleaned", kind]): kind for kind in CLEANERS}

DESCRIPTIONS = {
    "pin": "One row per pin (`ind`): placeholders and blank strings as null, follower_count as an integer "
    "(`306k` -> 306000, `1.5k` -> 1500, `3M` -> 3000000), save_location as the path only, downloaded 0/1.",
    "geo": "One row per post (`ind`): country, coordinates = [latitude, longitude], timestamp (UTC).",
    "user": "One row per post (`ind`): user_name = first + last name, age, date_joined (UTC).",
}
LINEAGE_NOTE = (" After the contract columns: the winning event's `_kafka_timestamp`, `_partition` and `_offset`,"
                " which a micro-batch's merge compares with its own events (only a newer event replaces a row).")

cleaned_specs = [
    dg.AssetSpec(
        key, deps=[dg.AssetKey(["raw", kind])], group_name="cleaned", kinds={"spark", "delta"},
        description=DESCRIPTIONS[kind] + LINEAGE_NOTE,
        metadata=write_mode_metadata("merge", ("ind",), newer_events_only=True, table_properties=MERGED_TABLE_PROPERTIES),
    )
    for key, kind in CLEANED_KEYS.items()
]


def latest_cleaned(kind: str, raw: DataFrame) -> DataFrame:
    """Cleaned rows of `raw`, one per `ind`: the event with the highest (_kafka_timestamp, _offset),
    followed by its lineage columns.

    Deduplicated first, then cleaned: on 1,000,000 raw pin events of 11,154 keys this took a write of
    cleaned/pin from 4.0 s to 1.5 s (the cleaning rules ran on every event before).
    """
    return CLEANERS[kind](latest_per_key(raw, parse_key(F.col(KEY_COLUMN[kind]))), keep=EVENT_LINEAGE_COLUMNS)


def cleaned_rows(kind: str, raw: DataFrame, full_refresh: bool) -> DataFrame:
    """A micro-batch's rows (its own events, deduplicated within the batch; the merge keeps a stored row
    that is newer), or for a rebuild every key's, from the events as sent, so that today's rules apply
    to every field they carried."""
    return latest_cleaned(kind, events_as_sent(raw, kind) if full_refresh else raw)
