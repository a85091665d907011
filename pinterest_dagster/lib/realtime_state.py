"""The realtime tables' incremental upkeep: what a micro-batch reads and writes to keep them exact.

A batch never re-reads the history of the posters it saw. `realtime/poster_popularity` is computed
from a compact state of one row per (poster, pin, category) at `<lake>/_state/poster_pins`: the
batch's state rows merge into it (commutative and idempotent, `transforms/realtime.py`), then the
touched posters' rows are recomputed from their state rows. `realtime/category_trends` recounts the
1-minute windows the batch touched from raw/pin, read only where `_kafka_timestamp` lies in those
windows: partition pruning on `_kafka_date` and file statistics skip every other file. Both stay exact
when a batch is replayed or commits after a later one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import NamedTuple

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pinterest_dagster.lib import delta
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.transforms import clean_pin
from pinterest_dagster.transforms.dedupe import EVENT_ORDER_COLUMNS
from pinterest_dagster.transforms.realtime import (
    POSTER_PIN_STATE_KEYS, POSTER_PIN_STATE_MERGE, TREND_WINDOW_SECONDS, category_trends, poster_pin_state,
    poster_popularity_from_state, trend_window_start,
)


def pin_events(raw_pin: DataFrame) -> DataFrame:
    """Cleaned pin events, one per Kafka message, with their event order columns."""
    return clean_pin(raw_pin, keep=EVENT_ORDER_COLUMNS)


def poster_state_path(lake: LakeResource) -> str:
    return lake.path("_state", "poster_pins")


def poster_popularity_of_batch(spark, lake: LakeResource, raw_pin: DataFrame, batch: DataFrame) -> DataFrame:
    """Merges the batch into the poster state; returns the touched posters' rows."""
    increment = poster_pin_state(pin_events(batch))
    delta.write_table(spark, increment, poster_state_path(lake), "merge", POSTER_PIN_STATE_KEYS,
                      matched_update=POSTER_PIN_STATE_MERGE, describe=False, options=delta.MERGED_TABLE_PROPERTIES)
    touched = increment.select("poster_name").distinct()
    state = delta.read_table(spark, poster_state_path(lake)).join(F.broadcast(touched), "poster_name", "left_semi")
    return poster_popularity_from_state(state)


def poster_popularity_rebuilt(spark, lake: LakeResource, raw_pin: DataFrame) -> DataFrame:
    """Rebuilds the poster state from all of raw/pin; returns every poster's row."""
    delta.write_table(spark, poster_pin_state(pin_events(raw_pin)), poster_state_path(lake), "overwrite",
                      describe=False, options=delta.MERGED_TABLE_PROPERTIES)
    return poster_popularity_from_state(delta.read_table(spark, poster_state_path(lake)))


def category_trends_of_batch(spark, lake: LakeResource, raw_pin: DataFrame, batch: DataFrame) -> DataFrame:
    """The windows the batch touched, recounted from the raw pin events in them."""
    windows = [row[0] for row in batch.select(
        trend_window_start("_kafka_timestamp").cast("long")).distinct().collect()]
    return category_trends(pin_events(events_in_spans(raw_pin, window_spans(windows, TREND_WINDOW_SECONDS))))


def category_trends_rebuilt(spark, lake: LakeResource, raw_pin: DataFrame) -> DataFrame:
    return category_trends(pin_events(raw_pin))


def window_spans(starts: list[int], seconds: int) -> list[tuple[int, int]]:
    """Windows of `seconds` starting at `starts` (epoch seconds), adjacent ones joined: [(start, end)]."""
    spans: list[tuple[int, int]] = []
    for start in sorted(set(starts)):
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], start + seconds)
        else:
            spans.append((start, start + seconds))
    return spans


def events_in_spans(raw: DataFrame, spans: list[tuple[int, int]]) -> DataFrame:
    """Rows of a raw table whose Kafka timestamp lies in one of `spans` ([start, end) epoch seconds).

    Each span names its `_kafka_date` partitions too, so whole days are pruned before file statistics.
    """
    def day(seconds: int) -> str:
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).date().isoformat()

    predicates = [
        f"(_kafka_date BETWEEN DATE'{day(start)}' AND DATE'{day(end - 1)}' "
        f"AND _kafka_timestamp >= timestamp_seconds({start}) AND _kafka_timestamp < timestamp_seconds({end}))"
        for start, end in spans
    ]
    return raw.where(" OR ".join(predicates) or "false")


class RealtimeTable(NamedTuple):
    """One realtime table: its merge keys, its rows for a micro-batch (state merged on the way), and
    its rows rebuilt from all of raw/pin."""

    name: str
    merge_keys: tuple[str, ...]
    of_batch: Callable[..., DataFrame]
    rebuilt: Callable[..., DataFrame]
    description: str


REALTIME_TABLES = {
    table.name: table
    for table in (
        RealtimeTable(
            "poster_popularity", ("poster_name",), poster_popularity_of_batch, poster_popularity_rebuilt,
            "Per poster: latest known follower_count, distinct pins seen (pin_count), the category of most of "
            "their pins (top_category) and the Kafka time of their last pin (last_seen_at). A micro-batch merges "
            "its pins into a compact state of one row per (poster, pin, category) and recomputes the posters it "
            "saw from their state rows, so a replayed batch changes nothing.",
        ),
        RealtimeTable(
            "category_trends", ("window_start", "category"), category_trends_of_batch, category_trends_rebuilt,
            "Pin events per category in 1-minute tumbling windows of Kafka timestamp (window_start, category, "
            "pin_count). A micro-batch recounts the windows it touched from the raw pin events in them, read "
            "by Kafka date and time, not from the whole table.",
        ),
    )
}
