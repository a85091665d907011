"""Hand-written dirty events through real Kafka and batch_job into the raw, rejects and cleaned tables."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
import pytest

from emulator import generator
from pinterest_dagster.defs.ingest.checks import COMPLETENESS_CHECK, offsets_stored
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.transforms.aggregate import AGGREGATES
from pinterest_dagster.transforms.clean import CLEANED_COLUMNS
from pinterest_dagster.transforms.dedupe import EVENT_LINEAGE_COLUMNS

PIN = {
    "index": 0, "unique_id": "u0", "title": "Cozy rug", "description": "A rug", "poster_name": "Home Co",
    "follower_count": "437", "tag_list": "rug,cozy", "is_image_or_video": "image",
    "image_src": "https://i.pinimg.com/a.jpg", "downloaded": 1,
    "save_location": "Local save in /data/home-decor", "category": "home-decor",
}
PINS = [
    {**PIN, "index": 1, "unique_id": "u1", "title": generator.NO_TITLE, "description": generator.NO_DESCRIPTIONS[0],
     "poster_name": generator.USER_INFO_ERROR, "follower_count": generator.USER_INFO_ERROR,
     "tag_list": generator.NO_TAGS, "image_src": generator.IMAGE_SRC_ERROR, "downloaded": 0,
     "is_image_or_video": "  ", "category": "", "save_location": "Local save in /data/travel"},
    {**PIN, "index": 2, "unique_id": "u2", "description": generator.NO_DESCRIPTIONS[1], "follower_count": "1.5k"},
    {**PIN, "index": 3, "unique_id": "u3", "description": generator.NO_DESCRIPTIONS[2], "follower_count": "3M"},
    # Three events for ind 4: the newest Kafka timestamp wins, even though it is not the last offset.
    {**PIN, "index": 4, "unique_id": "u4", "follower_count": "306k"},
    {**PIN, "index": 4, "unique_id": "u4", "follower_count": "437", "title": "newest"},
    {**PIN, "index": 4, "unique_id": "u4", "follower_count": "12", "title": "late but older"},
]
PIN_TIMESTAMPS = [1_700_000_000_000] * 3 + [1_700_000_001_000, 1_700_000_003_000, 1_700_000_002_000]
MALFORMED = ["not json at all", "[1, 2, 3]", '{"title": "no key"}', '{"index": "abc"}']
GEOS = [
    {"ind": 1, "timestamp": "2020-08-28T03:52:47", "latitude": 10.5, "longitude": -20.25, "country": "France"},
    {"ind": 2, "timestamp": "2020-08-28 03:52:47", "latitude": -1.0, "longitude": 2.0, "country": "Chile"},
    {"ind": 3, "timestamp": "2020-08-28T03:52:47.250+02:00", "latitude": 0.0, "longitude": 0.0, "country": "Peru"},
    {"ind": 4, "timestamp": "2019-01-01T00:00:00Z", "latitude": 1.0, "longitude": 1.0, "country": " "},
]
USERS = [
    {"ind": 1, "first_name": "", "last_name": "Smith", "age": 30, "date_joined": "2016-05-05T10:00:00"},
    {"ind": 2, "first_name": "Ann", "last_name": "Lee", "age": 51, "date_joined": "2017-01-02 03:04:05"},
    {"ind": 3, "first_name": None, "last_name": "Ng", "age": 18, "date_joined": "2015-12-31T23:59:59.5"},
    {"ind": 4, "first_name": "Bo", "last_name": "", "age": 70, "date_joined": "2020-02-29T12:00:00+00:00"},
]


@pytest.fixture(scope="module")
def first_run(pipeline):
    pipeline.send("pin", PINS + MALFORMED, PIN_TIMESTAMPS + [1_700_000_004_000] * len(MALFORMED))
    pipeline.send("geo", GEOS + ["{broken"])
    pipeline.send("user", USERS)
    return pipeline.run_batch_job()


def rows(spark, pipeline, layer, name):
    df = delta.read_table(spark, pipeline.settings.table_path(layer, name))
    if layer != "cleaned":
        return df
    return {row["ind"]: row.asDict() for row in df.select(*CLEANED_COLUMNS[name]).collect()}  # as readers do


def test_cleaned_pin_applies_every_rule(first_run, spark, pipeline):
    pins = rows(spark, pipeline, "cleaned", "pin")
    assert sorted(pins) == [1, 2, 3, 4]
    assert pins[1] == {
        "ind": 1, "unique_id": "u1", "title": None, "description": None, "follower_count": None,
        "poster_name": None, "tag_list": None, "is_image_or_video": None, "image_src": None,
        "save_location": "/data/travel", "category": None, "downloaded": 0,
    }
    assert (pins[2]["follower_count"], pins[2]["description"]) == (1500, None)
    assert (pins[3]["follower_count"], pins[3]["description"]) == (3_000_000, None)
    assert (pins[4]["follower_count"], pins[4]["title"]) == (437, "newest")
    assert pins[2]["save_location"] == "/data/home-decor" and pins[2]["downloaded"] == 1


def test_cleaned_tables_have_exactly_the_contract_columns_then_the_winning_events_lineage(first_run, spark, pipeline):
    for kind, columns in CLEANED_COLUMNS.items():
        table = delta.read_table(spark, pipeline.settings.table_path("cleaned", kind))
        assert table.columns == columns + list(EVENT_LINEAGE_COLUMNS)


def test_cleaned_lineage_names_the_winning_event(first_run, spark, pipeline):
    table = delta.read_table(spark, pipeline.settings.table_path("cleaned", "pin"))
    newest = table.where("ind = 4").first()
    assert newest["title"] == "newest"
    assert newest["_kafka_timestamp"] == datetime.fromtimestamp(1_700_000_003, timezone.utc).replace(tzinfo=None)


def test_cleaned_geo_parses_both_datetime_spellings_fractions_and_zones(first_run, spark, pipeline):
    geos = rows(spark, pipeline, "cleaned", "geo")
    assert geos[1]["timestamp"] == geos[2]["timestamp"] == datetime(2020, 8, 28, 3, 52, 47)
    assert geos[3]["timestamp"] == datetime(2020, 8, 28, 1, 52, 47, 250_000)
    assert geos[4]["timestamp"] == datetime(2019, 1, 1)
    assert geos[1]["coordinates"] == [10.5, -20.25]
    assert geos[1]["country"] == "France" and geos[4]["country"] is None


def test_cleaned_user_joins_names_and_parses_dates(first_run, spark, pipeline):
    users = rows(spark, pipeline, "cleaned", "user")
    assert {ind: u["user_name"] for ind, u in users.items()} == {1: "Smith", 2: "Ann Lee", 3: "Ng", 4: "Bo"}
    assert users[2]["age"] == 51
    assert users[2]["date_joined"] == datetime(2017, 1, 2, 3, 4, 5)
    assert users[3]["date_joined"] == datetime(2015, 12, 31, 23, 59, 59, 500_000)
    assert users[4]["date_joined"] == datetime(2020, 2, 29, 12)


def test_malformed_events_go_to_rejects_with_the_reason(first_run, spark, pipeline):
    rejects = rows(spark, pipeline, "raw", "rejects").collect()
    by_value = {r["value"]: r for r in rejects}
    assert set(by_value) == set(MALFORMED) | {"{broken"}
    assert by_value["not json at all"]["error"] == "not valid JSON"
    assert by_value["[1, 2, 3]"]["error"] == "not a JSON object"
    assert "missing integer key 'index'" in by_value['{"index": "abc"}']["error"]
    assert by_value["{broken"]["_topic"] == pipeline.settings.topic("geo")


def test_raw_keeps_strings_as_sent_and_kafka_lineage(first_run, spark, pipeline):
    raw = rows(spark, pipeline, "raw", "pin")
    assert raw.count() == len(PINS)
    row = raw.where("index = '2'").first()
    assert row["follower_count"] == "1.5k" and row["downloaded"] == "1"
    assert row["_topic"] == pipeline.settings.topic("pin") and row["_offset"] >= 0
    assert row["_kafka_timestamp"] == datetime.utcfromtimestamp(PIN_TIMESTAMPS[1] / 1000)


def test_every_check_passes(first_run):
    evaluations = first_run.get_asset_check_evaluations()
    # 3 completeness and 3 drift checks of raw, 9 contract checks of cleaned, 3 of the realtime tables, 9 of the
    # aggregated tables, and the freshness checks of cleaned/pin and the realtime tables
    assert len(evaluations) == 3 + 3 + 9 + 3 + 9 + 3
    assert all(e.passed for e in evaluations), [(e.check_name, e.metadata) for e in evaluations if not e.passed]


def test_a_subset_of_the_checks_runs_only_those(first_run, pipeline):
    """Each check family is one step over three tables: selecting one table's checks queries that one."""
    selected = [
        dg.AssetCheckKey(dg.AssetKey(["raw", "pin"]), COMPLETENESS_CHECK),
        dg.AssetCheckKey(dg.AssetKey(["cleaned", "geo"]), "ind_unique"),
    ]
    job = dg.define_asset_job("two_checks", selection=dg.AssetSelection.checks(*selected))
    defs = dg.Definitions.merge(pipeline.defs, dg.Definitions(jobs=[job]))
    result = defs.resolve_job_def("two_checks").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    evaluations = result.get_asset_check_evaluations()
    assert sorted((e.asset_key, e.check_name) for e in evaluations) == sorted((k.asset_key, k.name) for k in selected)
    assert all(e.passed for e in evaluations)
    assert not result.get_asset_materialization_events()


def table_state(spark, pipeline):
    return {
        (layer, name): sorted(map(tuple, delta.read_table(spark, pipeline.settings.table_path(layer, name))
                                  .drop("_ingested_at").collect()))
        for layer, name in [("raw", "pin"), ("raw", "geo"), ("raw", "user"), ("raw", "rejects"),
                            ("cleaned", "pin"), ("cleaned", "geo"), ("cleaned", "user")]
    }


def aggregated_state(spark, pipeline):
    return {("aggregated", name): sorted(map(tuple, delta.read_table(spark, pipeline.settings.table_path("aggregated", name)).collect()))
            for name in AGGREGATES}


def test_rerun_without_new_events_changes_nothing_and_new_events_add_exactly_those(first_run, spark, pipeline):
    before = table_state(spark, pipeline)
    pipeline.run_batch_job()
    assert table_state(spark, pipeline) == before

    pipeline.send("pin", [{**PIN, "index": 5, "unique_id": "u5"}, "still not json"])
    pipeline.send("geo", [{**GEOS[0], "ind": 5}])
    pipeline.run_batch_job()
    after = table_state(spark, pipeline)
    assert len(after[("raw", "pin")]) == len(before[("raw", "pin")]) + 1
    assert len(after[("raw", "rejects")]) == len(before[("raw", "rejects")]) + 1
    assert len(after[("raw", "geo")]) == len(before[("raw", "geo")]) + 1
    assert after[("raw", "user")] == before[("raw", "user")]
    assert set(after[("cleaned", "pin")]) - set(before[("cleaned", "pin")]) == {
        next(r for r in after[("cleaned", "pin")] if r[0] == 5)
    }
    assert after[("cleaned", "user")] == before[("cleaned", "user")]
    # The daily batch merged what its catch-up brought; a rebuild from every raw event gives the same tables.
    daily = {**after, **aggregated_state(spark, pipeline)}
    pipeline.run_rebuild_job()
    assert {**table_state(spark, pipeline), **aggregated_state(spark, pipeline)} == daily


def test_an_offset_stored_twice_is_a_duplicate_even_across_raw_and_rejects(spark, tmp_path):
    lake = LakeResource(root=str(tmp_path))
    schema = "_topic string, _partition int, _offset long"
    stored = {
        "pin": [("t.pin", 0, 0), ("t.pin", 0, 1), ("t.pin", 1, 0), ("t.pin", 1, 0), ("other.pin", 0, 5)],
        "rejects": [("t.pin", 0, 1), ("t.pin", 0, 2), ("t.geo", 0, 0)],
    }
    for table, rows in stored.items():
        delta.write_table(spark, spark.createDataFrame(rows, schema), lake.path("raw", table), "append", describe=False)
    # The retained, ingested window: offsets 1-2 of partition 0 (offset 0 is past retention), 0 of partition 1.
    window = {0: [(1, 3)], 1: [(0, 1)]}
    counts = offsets_stored(spark, lake, "pin", "t.pin", window, everything=True)
    # 4 + 2 rows of t.pin hold 4 distinct offsets: (1, 0) twice in raw, (0, 1) in raw and in rejects;
    # of those, (0, 1), (0, 2) and (1, 0) lie in the window.
    assert (counts["raw"], counts["rejects"], counts["offsets"], counts["in_regions"]) == (4, 2, 4, 3)
    # Without `everything`, only the rows in the window are read.
    counts = offsets_stored(spark, lake, "pin", "t.pin", window)
    assert (counts["raw"], counts["rejects"], counts["offsets"], counts["in_regions"]) == (3, 2, 3, 3)
