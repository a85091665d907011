"""Raw rows to cleaned rows: one test per rule of docs/architecture.md section 4."""

from __future__ import annotations

import datetime as dt
import unicodedata
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyspark.sql import functions as F

from pinterest_dagster.transforms import CLEANED_COLUMNS, SOURCE_COLUMNS, clean_geo, clean_pin, clean_user
from pinterest_dagster.transforms.clean import parse_follower_count, parse_save_location, parse_timestamp

PIN_NATIVE_TYPES = {"index": "bigint", "follower_count": "int", "downloaded": "int"}
GEO_NATIVE_TYPES = {"ind": "int", "latitude": "double", "longitude": "double"}
CLEAN = {"pin": clean_pin, "geo": clean_geo, "user": clean_user}
UTC = dt.UTC
# Zone suffixes of datetime text and what they mean; no suffix means UTC.
ZONES = {
    "": UTC,
    "Z": UTC,
    "+02:00": dt.timezone(dt.timedelta(hours=2)),
    "-05:30": dt.timezone(-dt.timedelta(hours=5, minutes=30)),
}
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)

# A valid raw row of each kind, strings as typed in the event; tests override what they are about.
RAW = {
    "pin": {
        "index": "7",
        "unique_id": "9f2c1b3e-0d4a-4c55-8a11-2b3c4d5e6f70",
        "title": "Ocean sunset",
        "description": "Waves at dusk",
        "poster_name": "Ann Lee",
        "follower_count": "437",
        "tag_list": "sea,sun,travel",
        "is_image_or_video": "image",
        "image_src": "https://i.pinimg.com/originals/ab/cd.jpg",
        "downloaded": "1",
        "save_location": "Local save in /data/travel",
        "category": "travel",
    },
    "geo": {
        "ind": "7",
        "timestamp": "2020-08-28T03:52:47",
        "latitude": "40.5",
        "longitude": "-73.25",
        "country": "France",
    },
    "user": {
        "ind": "7",
        "first_name": "Ann",
        "last_name": "Lee",
        "age": "30",
        "date_joined": "2016-05-01 10:00:00",
    },
}


def raw(spark, kind, *overrides, types=None):
    """Raw rows of one kind: the valid row once per override (or once without any), strings unless `types`."""
    rows = [{**RAW[kind], **override} for override in overrides or ({},)]
    schema = ", ".join(f"`{name}` {(types or {}).get(name, 'string')}" for name in SOURCE_COLUMNS[kind])
    return spark.createDataFrame([tuple(row[name] for name in SOURCE_COLUMNS[kind]) for row in rows], schema)


def cleaned(spark, kind, *overrides):
    """Collected cleaned rows for the valid raw row with each override applied."""
    return CLEAN[kind](raw(spark, kind, *overrides)).collect()


def cleaned_column(spark, kind, column, source_column, values):
    """The cleaned `column` for each value put into `source_column` of the valid raw row."""
    return [row[column] for row in cleaned(spark, kind, *[{source_column: v} for v in values])]


def is_blank(text):
    """Nothing visible: whitespace and control characters only."""
    return all(char.isspace() or unicodedata.category(char) == "Cc" for char in text)


def apply_rule(spark, rule, values):
    """A column rule applied to each text value, for property tests that need no whole row."""
    df = spark.createDataFrame([(v,) for v in values], "value string")
    return [row[0] for row in df.select(rule(F.col("value"))).collect()]


def instants(spark, rule, values):
    """A timestamp rule's results as UTC datetimes, whatever the session or Python time zone."""
    micros = apply_rule(spark, lambda col: F.unix_micros(rule(col)), values)
    return [None if m is None else EPOCH + dt.timedelta(microseconds=m) for m in micros]


@pytest.mark.parametrize("kind", ["pin", "geo", "user"])
def test_cleaned_columns_are_the_contract_columns_in_order(spark, kind):
    assert CLEAN[kind](raw(spark, kind)).columns == CLEANED_COLUMNS[kind]


def test_cleaned_column_types(spark):
    types = {kind: dict(CLEAN[kind](raw(spark, kind)).dtypes) for kind in CLEAN}

    assert types["pin"] == {
        **{name: "string" for name in CLEANED_COLUMNS["pin"]},
        "ind": "bigint",
        "follower_count": "bigint",
        "downloaded": "int",
    }
    assert types["geo"] == {
        "ind": "bigint",
        "country": "string",
        "coordinates": "array<double>",
        "timestamp": "timestamp",
    }
    assert types["user"] == {"ind": "bigint", "user_name": "string", "age": "int", "date_joined": "timestamp"}


def test_a_valid_pin_is_kept_as_is_but_typed(spark):
    [row] = cleaned(spark, "pin")

    assert row.asDict() == {
        **{name: RAW["pin"][name] for name in CLEANED_COLUMNS["pin"] if name in RAW["pin"]},
        "ind": 7,
        "follower_count": 437,
        "save_location": "/data/travel",
        "downloaded": 1,
    }


@pytest.mark.parametrize(
    ("column", "placeholder"),
    [
        ("title", "No Title Data Available"),
        ("description", "No description available Story format"),
        ("description", "No description available"),
        ("description", "Untitled"),
        ("poster_name", "User Info Error"),
        ("follower_count", "User Info Error"),
        ("tag_list", "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e"),
        ("image_src", "Image src error."),
    ],
)
def test_a_placeholder_becomes_null(spark, column, placeholder):
    assert cleaned_column(spark, "pin", column, column, [placeholder]) == [None]


def test_a_placeholder_is_null_in_any_text_column(spark):
    [pin] = cleaned(spark, "pin", {"title": "Untitled", "category": "User Info Error"})
    [geo] = cleaned(spark, "geo", {"country": " Image src error. "})
    [user] = cleaned(spark, "user", {"first_name": "No Title Data Available"})

    assert (pin.title, pin.category, geo.country, user.user_name) == (None, None, None, "Lee")


def test_a_placeholder_is_only_a_whole_value(spark):
    values = ["No Title Data Available here", "Untitled 2"]

    assert cleaned_column(spark, "pin", "title", "title", values) == values


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        ("pin", ["unique_id", "title", "description", "poster_name", "tag_list", "is_image_or_video"]),
        ("pin", ["image_src", "save_location", "category"]),
        ("geo", ["country"]),
    ],
)
def test_an_empty_or_blank_text_becomes_null(spark, kind, columns):
    overrides = [{name: blank} for name in columns for blank in ["", "  ", "\t\n", "\xa0\u3000"]]

    rows = cleaned(spark, kind, *overrides)

    assert {
        (name, row[name]) for row, override in zip(rows, overrides, strict=True) for name in override
    } == {(name, None) for name in columns}


def test_follower_count_reads_digits_thousands_and_millions(spark):
    counts = {
        "437": 437,
        "306k": 306_000,
        "1.5k": 1_500,
        "3M": 3_000_000,
        "12K": 12_000,
        "2m": 2_000_000,
        " 45k ": 45_000,
        "1.1k": 1_100,
        "0": 0,
    }

    assert cleaned_column(spark, "pin", "follower_count", "follower_count", list(counts)) == list(
        counts.values()
    )


def test_follower_count_that_cannot_be_read_is_null(spark):
    unreadable = [
        "many",
        "12b",
        "-5",
        "1,234",
        "k",
        "1.5.2k",
        "3MM",
        "1e3",
        "",
        "999999999999999999999999999999999M",
    ]

    assert cleaned_column(spark, "pin", "follower_count", "follower_count", unreadable) == [None] * len(
        unreadable
    )


def test_save_location_is_the_path_only(spark):
    values = ["Local save in /data/travel", "/data/art", "Local save in ", "local save in /data/diy"]

    assert cleaned_column(spark, "pin", "save_location", "save_location", values) == [
        "/data/travel",
        "/data/art",
        None,
        "/data/diy",
    ]


def test_ind_is_the_integer_index(spark):
    assert cleaned_column(spark, "pin", "ind", "index", ["12", "-3"]) == [12, -3]


def test_downloaded_is_zero_or_one(spark):
    assert cleaned_column(spark, "pin", "downloaded", "downloaded", ["0", "1", "2", "yes", "true", ""]) == [
        0,
        1,
        None,
        None,
        None,
        None,
    ]


def test_coordinates_are_latitude_then_longitude(spark):
    [row] = cleaned(spark, "geo", {"latitude": "-33.865", "longitude": "151.2094"})

    assert row.coordinates == [-33.865, 151.2094]


@pytest.mark.parametrize(
    ("latitude", "longitude"),
    [(None, "151.2"), ("-33.8", None), ("north", "151.2"), ("95", "151.2"), ("-33.8", "181"), ("NaN", "1")],
    ids=["no-latitude", "no-longitude", "text", "latitude-off-globe", "longitude-off-globe", "nan"],
)
def test_coordinates_are_null_unless_both_are_on_the_globe(spark, latitude, longitude):
    [row] = cleaned(spark, "geo", {"latitude": latitude, "longitude": longitude})

    assert row.coordinates is None


def test_timestamp_reads_both_spellings_fractions_and_zones(spark):
    spellings = {
        "2020-08-28T03:52:47": dt.datetime(2020, 8, 28, 3, 52, 47, tzinfo=UTC),
        "2020-08-28 03:52:47": dt.datetime(2020, 8, 28, 3, 52, 47, tzinfo=UTC),
        "2020-08-28T03:52:47.123456": dt.datetime(2020, 8, 28, 3, 52, 47, 123456, tzinfo=UTC),
        "2020-08-28 03:52:47.5": dt.datetime(2020, 8, 28, 3, 52, 47, 500000, tzinfo=UTC),
        "2020-08-28T03:52:47Z": dt.datetime(2020, 8, 28, 3, 52, 47, tzinfo=UTC),
        "2020-08-28T03:52:47+02:00": dt.datetime(2020, 8, 28, 1, 52, 47, tzinfo=UTC),
        "2020-08-28 03:52:47.25-05:00": dt.datetime(2020, 8, 28, 8, 52, 47, 250000, tzinfo=UTC),
    }

    assert instants(spark, parse_timestamp, list(spellings)) == list(spellings.values())


def test_timestamp_that_cannot_be_read_is_null(spark):
    assert instants(spark, parse_timestamp, ["yesterday", "2020-13-45 10:00:00", "", None]) == [None] * 4


def test_geo_timestamp_and_user_date_joined_are_timestamps(spark):
    geo = clean_geo(raw(spark, "geo", {"timestamp": "2020-08-28 03:52:47+02:00"}))
    user = clean_user(raw(spark, "user", {"date_joined": "2016-05-01T10:00:00.5Z"}))

    [[geo_micros]] = geo.select(F.unix_micros("timestamp")).collect()
    [[user_micros]] = user.select(F.unix_micros("date_joined")).collect()
    assert EPOCH + dt.timedelta(microseconds=geo_micros) == dt.datetime(2020, 8, 28, 1, 52, 47, tzinfo=UTC)
    assert EPOCH + dt.timedelta(microseconds=user_micros) == dt.datetime(
        2016, 5, 1, 10, 0, 0, 500000, tzinfo=UTC
    )


def test_user_name_joins_first_and_last_name(spark):
    names = [
        {"first_name": "Ann", "last_name": "Lee"},
        {"first_name": None, "last_name": "Lee"},
        {"first_name": "Ann", "last_name": ""},
        {"first_name": " ", "last_name": None},
    ]

    assert [row.user_name for row in cleaned(spark, "user", *names)] == ["Ann Lee", "Lee", "Ann", None]


def test_age_is_an_integer(spark):
    assert cleaned_column(spark, "user", "age", "age", ["30", "thirty", ""]) == [30, None, None]


def test_natively_typed_columns_are_cleaned_too(spark):
    pin = raw(spark, "pin", {"index": 7, "follower_count": 437, "downloaded": 1}, types=PIN_NATIVE_TYPES)
    geo = raw(spark, "geo", {"ind": 7, "latitude": 40.5, "longitude": -73.25}, types=GEO_NATIVE_TYPES)

    [pin_row] = clean_pin(pin).collect()
    [geo_row] = clean_geo(geo).collect()
    assert (pin_row.ind, pin_row.follower_count, pin_row.downloaded) == (7, 437, 1)
    assert (geo_row.ind, geo_row.coordinates) == (7, [40.5, -73.25])


def test_keep_carries_extra_columns_after_the_contract_columns(spark):
    df = raw(spark, "user").withColumn("_offset", F.lit(42))

    result = clean_user(df, keep=["_offset"])

    assert result.columns == CLEANED_COLUMNS["user"] + ["_offset"]
    assert result.first()._offset == 42


def test_cleaning_does_not_deduplicate(spark):
    assert len(cleaned(spark, "pin", {"title": "first"}, {"title": "second"})) == 2


@given(
    rows=st.lists(
        st.lists(st.none() | st.text(max_size=20), min_size=12, max_size=12), min_size=1, max_size=50
    )
)
def test_any_text_in_every_column_cleans_without_error(spark, ansi, rows):
    for kind, clean in CLEAN.items():
        width = len(SOURCE_COLUMNS[kind])
        df = raw(spark, kind, *[dict(zip(SOURCE_COLUMNS[kind], row[:width], strict=True)) for row in rows])

        assert len(clean(df).collect()) == len(rows)


@given(
    texts=st.lists(
        st.text(max_size=12) | st.from_regex(r"\s*[0-9]{1,12}(\.[0-9]{1,4})?\s*[kKmM]?\s*", fullmatch=True),
        max_size=100,
    )
)
def test_any_follower_count_text_is_a_count_or_null(spark, ansi, texts):
    assert all(count is None or count >= 0 for count in apply_rule(spark, parse_follower_count, texts))


@given(
    counts=st.lists(
        st.tuples(st.decimals(0, 10**6, places=3), st.sampled_from(["", "k", "K", "m", "M"])),
        min_size=1,
        max_size=100,
    )
)
def test_follower_count_is_the_number_times_its_suffix(spark, counts):
    texts = [f"{number}{suffix}" for number, suffix in counts]
    multiplier = {"": 1, "k": 1_000, "m": 1_000_000}
    expected = [
        int((number * multiplier[suffix.lower()]).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        for number, suffix in counts
    ]

    assert apply_rule(spark, parse_follower_count, texts) == expected


@given(
    texts=st.lists(st.text(max_size=30) | st.text(max_size=20).map("Local save in {}".format), max_size=100)
)
def test_any_save_location_text_is_a_path_or_null(spark, ansi, texts):
    for text, location in zip(texts, apply_rule(spark, parse_save_location, texts), strict=True):
        assert location is None or (text.endswith(location) and not is_blank(location))


@given(
    texts=st.lists(
        st.text(max_size=30)
        | st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.+Z-]{0,20}", fullmatch=True),
        max_size=100,
    )
)
def test_any_datetime_text_is_a_timestamp_or_null(spark, ansi, texts):
    assert all(
        value is None or isinstance(value, dt.datetime) for value in apply_rule(spark, parse_timestamp, texts)
    )


@given(
    moments=st.lists(
        st.tuples(
            st.datetimes(dt.datetime(1971, 1, 1), dt.datetime(2099, 12, 31)),
            st.sampled_from(["T", " "]),
            st.booleans(),
            st.sampled_from(list(ZONES)),
        ),
        min_size=1,
        max_size=100,
    )
)
def test_datetime_text_in_any_spelling_is_the_same_instant(spark, moments):
    texts, expected = [], []
    for moment, separator, with_fraction, zone in moments:
        moment = moment.replace(microsecond=moment.microsecond if with_fraction else 0)
        texts.append(moment.isoformat(sep=separator) + zone)
        expected.append(moment.replace(tzinfo=ZONES[zone]).astimezone(UTC))

    assert instants(spark, parse_timestamp, texts) == expected
