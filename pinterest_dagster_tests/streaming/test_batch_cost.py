"""A micro-batch costs its batch, not the history (docs/architecture.md section 8), and its result does not depend on
the order in which batches commit (section 5): real streaming_job runs on the real broker and Delta lake.

Two batches touch the same keys and posters: batch A holds older events, batch B newer ones. One lake
runs A then B, another B then A (a retry finishing after a later batch), and a replay of A changes
nothing. A third lake first ingests days of history for the same keys, and A in two micro-batches compacted
as maintenance compacts raw; there, every query of B's merges opens only the raw files B wrote, asserted
from the scan metrics of the queries themselves.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from pyspark.sql import functions as F

from benchmarks.scan_metrics import files_scanned
from pinterest_dagster.definitions import build_definitions
from pinterest_dagster.defs.clean.assets import latest_cleaned
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import RAW_COMPRESSION, OffsetRange, events_in
from pinterest_dagster.lib.microbatch import run_config
from pinterest_dagster.lib.maintenance import compact
from pinterest_dagster.lib.realtime_state import REALTIME_TABLES, poster_state_path
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.settings import TOPIC_KINDS
from pinterest_dagster_tests.pipeline import Pipeline

KEYS = range(40)
DAY_MS = 86_400_000
HISTORY_DAYS = 2
TABLES = [("cleaned", kind) for kind in TOPIC_KINDS] + [("realtime", name) for name in REALTIME_TABLES]


def post(key: int, version: int) -> dict[str, dict]:
    """The pin, geo and user events of one post; a later `version` changes what cleaning keeps."""
    return {
        "pin": {"index": key, "unique_id": f"u{key}", "title": f"title v{version}", "description": "d",
                "poster_name": f"poster{key % 7}", "follower_count": f"{key + version}k", "tag_list": "a,b",
                "is_image_or_video": "image", "image_src": "https://i/x.jpg", "downloaded": 1,
                "save_location": "Local save in /data/art", "category": ["art", "travel", "quotes"][(key + version) % 3]},
        "geo": {"ind": key, "timestamp": "2020-08-28T03:52:47", "latitude": 1.0 + version, "longitude": 2.0,
                "country": f"Country {version}"},
        "user": {"ind": key, "first_name": "Ann", "last_name": f"Lee{version}", "age": 20 + version,
                 "date_joined": "2016-01-02 03:04:05"},
    }


def send_batch(pipeline: Pipeline, version: int, timestamp_ms: int) -> list[OffsetRange]:
    """Sends a post for every key at this Kafka time; returns the offset ranges they occupy."""
    posts = [post(key, version) for key in KEYS]
    timestamps = [timestamp_ms + position for position in range(len(posts))]

    def send():
        for kind in TOPIC_KINDS:
            pipeline.send(kind, [p[kind] for p in posts], timestamps)

    return pipeline.ranges_sent_by(send)


def on_lake(pipeline: Pipeline, lake_root: str) -> Pipeline:
    """The same topics, another lake."""
    settings = dataclasses.replace(pipeline.settings, lake_root=lake_root)
    return Pipeline(settings, build_definitions(settings), pipeline.source_url)


def contents(spark, pipeline: Pipeline) -> dict:
    def rows(layer, name):
        return sorted(map(str, delta.read_table(spark, pipeline.settings.table_path(layer, name)).collect()))

    state = sorted(map(str, delta.read_table(spark, poster_state_path(LakeResource.from_settings(pipeline.settings))).collect()))
    return {**{table: rows(*table) for table in TABLES}, "poster state": state}


@pytest.fixture(scope="module")
def batches(pipeline):
    # 10 s into a minute: each batch's events (one ms apart) fall in one 1-minute trend window, not two.
    now_ms = int(time.time() * 1000) // 60_000 * 60_000 + 10_000
    return send_batch(pipeline, 1, now_ms - 120_000), send_batch(pipeline, 2, now_ms - 60_000)


@pytest.fixture(scope="module")
def in_order(pipeline, batches):
    a, b = batches
    pipeline.run_job("streaming_job", run_config(a))
    pipeline.run_job("streaming_job", run_config(b))
    return pipeline


@pytest.fixture(scope="module")
def out_of_order(pipeline, batches, tmp_path_factory):
    a, b = batches
    other = on_lake(pipeline, str(tmp_path_factory.mktemp("lake-out-of-order")))
    other.run_job("streaming_job", run_config(b))
    other.run_job("streaming_job", run_config(a))  # the older batch commits last
    return other


def test_batches_committed_in_either_order_give_the_same_cleaned_and_realtime_tables(spark, in_order, out_of_order):
    expected = contents(spark, in_order)
    assert contents(spark, out_of_order) == expected
    # The newer batch won: its title is what cleaned/pin holds for every key.
    titles = delta.read_table(spark, in_order.settings.table_path("cleaned", "pin")).select("title").distinct().collect()
    assert [r["title"] for r in titles] == ["title v2"]


def test_poster_popularity_counts_every_pin_of_both_batches(spark, in_order):
    popularity = delta.read_table(spark, in_order.settings.table_path("realtime", "poster_popularity"))
    assert popularity.agg(F.sum("pin_count")).first()[0] == len(KEYS)
    trends = delta.read_table(spark, in_order.settings.table_path("realtime", "category_trends"))
    assert trends.agg(F.sum("pin_count")).first()[0] == 2 * len(KEYS)


def test_replaying_a_batch_changes_no_table(spark, in_order, out_of_order, batches):
    before = contents(spark, out_of_order)
    out_of_order.run_job("streaming_job", run_config(batches[1]))
    assert contents(spark, out_of_order) == before


def data_files(spark, path: str) -> int:
    return spark.sql(f"DESCRIBE DETAIL {delta.sql_path(path)}").first()["numFiles"]


def halves(ranges: list[OffsetRange]) -> tuple[list[OffsetRange], list[OffsetRange]]:
    middle = {r: (r.start + r.end) // 2 for r in ranges}
    return ([dataclasses.replace(r, end=middle[r]) for r in ranges if middle[r] > r.start],
            [dataclasses.replace(r, start=middle[r]) for r in ranges])


@pytest.fixture(scope="module")
def history_lake(pipeline, spark, batches, tmp_path_factory):
    """A lake that ingested HISTORY_DAYS days of events of the same keys, one batch a day, then batch A in two
    micro-batches, compacted as maintenance_job compacts raw, then batch B."""
    lake = on_lake(pipeline, str(tmp_path_factory.mktemp("lake-history")))
    now_ms = int(time.time() * 1000)
    for day in range(HISTORY_DAYS, 0, -1):
        lake.run_job("streaming_job", run_config(send_batch(pipeline, 0, now_ms - day * DAY_MS)))
    for half in halves(batches[0]):
        lake.run_job("streaming_job", run_config(half))
    for kind in TOPIC_KINDS:
        assert compact(spark, lake.settings.table_path("raw", kind), RAW_COMPRESSION).files_removed > 0, kind
    lake.run_job("streaming_job", run_config(batches[1]))
    return lake


@pytest.mark.spark
def test_a_micro_batch_on_a_lake_with_history_reads_only_the_raw_files_of_its_batch(spark, history_lake, batches):
    b = batches[1]
    settings = history_lake.settings
    lake = LakeResource.from_settings(settings)
    for kind in TOPIC_KINDS:
        path = settings.table_path("raw", kind)
        batch_files = int(delta.latest_commit(spark, path).metrics["numFiles"])  # B was the last write of raw
        assert data_files(spark, path) >= (HISTORY_DAYS + 1) * batch_files > 0
        raw = delta.read_table(spark, path)
        # The cleaned merge's source: the batch's own events, deduplicated. Batch A's files of the same date
        # were compacted just before B: each compacted file holds one Kafka partition's offsets, all below
        # B's, so B's merge does not open it.
        assert files_scanned(latest_cleaned(kind, events_in(raw, b))) == {path: batch_files}, kind
        per_file = raw.groupBy(F.input_file_name()).agg(F.countDistinct("_partition").alias("partitions")).collect()
        assert {r["partitions"] for r in per_file} == {1}, kind

    pin_path = settings.table_path("raw", "pin")
    raw_pin = delta.read_table(spark, pin_path)
    batch_pin = events_in(raw_pin, [r for r in b if r.topic == settings.topic("pin")])
    pin_files = int(delta.latest_commit(spark, pin_path).metrics["numFiles"])
    for table in REALTIME_TABLES.values():
        # poster_popularity reads its state and the batch, category_trends the batch's windows of raw/pin.
        scanned = files_scanned(table.of_batch(spark, lake, raw_pin, batch_pin))
        assert scanned.get(pin_path, 0) <= pin_files, table.name
