"""Kafka messages to raw rows and rejects (docs/architecture.md sections 3 and 4)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyspark.sql import functions as F

from pinterest_dagster.transforms import RAW_METADATA_COLUMNS, REJECT_COLUMNS, SOURCE_COLUMNS, parse_events
from pinterest_dagster.transforms.parse import events_as_sent

KAFKA_TIME = dt.datetime(2024, 5, 1, 12, 0, 0)
KAFKA_SCHEMA = "topic string, partition int, offset long, timestamp timestamp, value binary"


def kafka_messages(spark, values, topic="pinterest.pin"):
    """A DataFrame shaped like Spark's Kafka source; a str value is UTF-8 encoded, bytes are kept."""
    encoded = [v.encode() if isinstance(v, str) else v for v in values]
    rows = [(topic, 1, offset, KAFKA_TIME, value) for offset, value in enumerate(encoded)]
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


def parse(spark, values, kind="pin"):
    """Collected `(accepted, rejects)` rows for these message values."""
    accepted, rejects = parse_events(kafka_messages(spark, values, f"pinterest.{kind}"), kind)
    return accepted.collect(), rejects.collect()


def test_a_valid_event_is_accepted_with_its_kafka_metadata(spark):
    accepted, rejects = parse(spark, ['{"index": 12, "title": "Ocean", "category": "travel"}'])

    assert rejects == []
    [row] = accepted
    assert list(row.asDict()) == SOURCE_COLUMNS["pin"] + RAW_METADATA_COLUMNS
    assert (row["index"], row.title, row.category, row.description) == ("12", "Ocean", "travel", None)
    assert (row._topic, row._partition, row._offset, row._kafka_timestamp) == (
        "pinterest.pin",
        1,
        0,
        KAFKA_TIME,
    )
    assert row._ingested_at is not None


def test_strings_stay_strings_and_numbers_become_their_json_text(spark):
    event = {"index": 12, "follower_count": "306k", "downloaded": 1, "title": None}
    other = {"index": 13, "follower_count": 437, "poster_name": "User Info Error"}

    accepted, _ = parse(spark, [json.dumps(event), json.dumps(other)])

    assert [(r.follower_count, r.downloaded, r.title) for r in accepted] == [
        ("306k", "1", None),
        ("437", None, None),
    ]
    assert accepted[1].poster_name == "User Info Error"


def test_geo_keeps_the_event_timestamp_apart_from_the_kafka_timestamp(spark):
    event = {
        "ind": 7,
        "timestamp": "2020-08-28T03:52:47",
        "latitude": 40.5,
        "longitude": -73.25,
        "country": "France",
    }

    [row], _ = parse(spark, [json.dumps(event)], kind="geo")

    assert (row.ind, row.timestamp, row.latitude, row.longitude) == (
        "7",
        "2020-08-28T03:52:47",
        "40.5",
        "-73.25",
    )
    assert row._kafka_timestamp == KAFKA_TIME


def test_user_events_are_keyed_by_ind(spark):
    accepted, rejects = parse(spark, ['{"ind": 3, "first_name": "Ann"}', '{"index": 3}'], kind="user")

    assert [r.first_name for r in accepted] == ["Ann"]
    assert [r.error for r in rejects] == ["missing integer key 'ind'"]


@pytest.mark.parametrize(
    "value",
    ['{"index": "12"}', '{"index": -3}', ' \n{"index": 5} '],
    ids=["key-as-string", "negative-key", "surrounding-whitespace"],
)
def test_an_integer_key_in_any_spelling_is_accepted(spark, value):
    accepted, rejects = parse(spark, [value])

    assert (len(accepted), rejects) == (1, [])


# Why each kind of bad message is rejected, by case name.
REJECTED = {
    "not-json": ("not json", "not valid JSON"),
    "truncated": ('{"index": 12', "not valid JSON"),
    "single-quotes": ("{'index': 12}", "not valid JSON"),
    "duplicate-key": ('{"index": 1, "index": 2}', "not valid JSON"),
    "empty": ("", "not valid JSON"),
    "tombstone": (None, "not valid JSON"),
    "bad-utf8": (b'{"index": 1, "title": "\xff"}', "not valid UTF-8"),
    "array": ("[1, 2]", "not a JSON object"),
    "array-of-objects": ('[{"index": 12}]', "not a JSON object"),
    "number": ("42", "not a JSON object"),
    "string": ('"a string"', "not a JSON object"),
    "json-null": ("null", "not a JSON object"),
    "missing-key": ('{"title": "no key"}', "missing integer key 'index'"),
    "null-key": ('{"index": null}', "missing integer key 'index'"),
    "text-key": ('{"index": "abc"}', "missing integer key 'index'"),
    "fractional-key": ('{"index": 1.5}', "missing integer key 'index'"),
    "boolean-key": ('{"index": true}', "missing integer key 'index'"),
    "key-beyond-bigint": ('{"index": 9223372036854775808}', "missing integer key 'index'"),
}


def test_an_unparseable_event_is_rejected_with_the_reason(spark, ansi):
    cases = list(REJECTED)
    accepted, rejects = parse(spark, [REJECTED[case][0] for case in cases])

    assert accepted == []
    assert {cases[r._offset]: r.error for r in rejects} == {
        case: error for case, (_, error) in REJECTED.items()
    }
    assert all(list(r.asDict()) == REJECT_COLUMNS for r in rejects)
    assert {(r._topic, r._partition, r._kafka_timestamp) for r in rejects} == {
        ("pinterest.pin", 1, KAFKA_TIME)
    }


def test_a_reject_keeps_the_raw_value_as_text(spark):
    _, rejects = parse(spark, ["[1, 2]", b"\xff{"])

    assert [r.value for r in rejects] == ["[1, 2]", "\ufffd{"]


def test_an_unknown_kind_is_refused(spark):
    with pytest.raises(ValueError, match="unknown event kind 'board'"):
        parse_events(kafka_messages(spark, ["{}"]), "board")


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
keys = json_scalars | st.integers(-(2**63), 2**63 - 1) | st.integers(-(2**63), 2**63 - 1).map(str)
events = st.fixed_dictionaries(
    {"index": keys}, optional={"title": json_scalars, "extra": st.lists(json_scalars)}
)
message_values = st.one_of(
    events.map(json.dumps),
    st.recursive(json_scalars, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)).map(
        json.dumps
    ),
    st.text(),
    st.binary(),
    st.none(),
)


@given(values=st.lists(message_values, min_size=1, max_size=60))
def test_every_event_lands_in_exactly_one_output(spark, ansi, values):
    accepted, rejects = parse(spark, values)

    accepted_offsets = [r._offset for r in accepted]
    rejected_offsets = [r._offset for r in rejects]
    assert sorted(accepted_offsets + rejected_offsets) == list(range(len(values)))
    assert all(r.error for r in rejects)
    assert all(-(2**63) <= int(r["index"]) < 2**63 for r in accepted)


def test_a_64_bit_key_is_accepted(spark):
    accepted, rejects = parse(spark, ['{"index": 3000000000}', '{"index": "9223372036854775807"}'])

    assert rejects == []
    assert [r["index"] for r in accepted] == ["3000000000", "9223372036854775807"]


def test_raw_keeps_the_event_exactly_as_sent_with_fields_the_contract_does_not_name(spark):
    sent = '{"index": 5,  "board_id": "b-17", "nested": {"a": [1, 2]}, "title": "t"}'
    accepted, _ = parse(spark, [sent])

    assert accepted[0]["_event"] == sent
    assert "board_id" not in accepted[0].asDict()


def test_raw_rows_are_partitioned_by_the_utc_date_of_their_kafka_timestamp(spark):
    messages = kafka_messages(spark, ['{"index": 1}']).withColumn(
        "timestamp", F.lit(dt.datetime(2024, 5, 1, 23, 59, 59, tzinfo=dt.timezone.utc))
    )
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")  # 16:59 there, still May 1st in UTC
    try:
        accepted, _ = parse_events(messages, "pin")
        assert accepted.first()["_kafka_date"] == dt.date(2024, 5, 1)
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)


def test_events_as_sent_parses_the_source_columns_again_from_the_event(spark):
    accepted, _ = parse_events(kafka_messages(spark, ['{"index": 7, "title": "from the event", "board_id": 3}']), "pin")
    only_the_event = accepted.drop(*[c for c in SOURCE_COLUMNS["pin"]])
    for name in SOURCE_COLUMNS["pin"]:
        only_the_event = only_the_event.withColumn(name, F.lit(None).cast("string"))

    row = events_as_sent(only_the_event, "pin").first()
    assert (row["index"], row["title"]) == ("7", "from the event")


def test_events_as_sent_keeps_the_typed_columns_of_rows_ingested_without_the_event(spark):
    accepted, _ = parse_events(kafka_messages(spark, ['{"index": 7, "title": "typed"}']), "pin")
    legacy = accepted.withColumn("_event", F.lit(None).cast("string"))

    assert events_as_sent(legacy, "pin").first()["title"] == "typed"
