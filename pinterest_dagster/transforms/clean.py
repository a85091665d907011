"""Raw rows to cleaned rows: one function per rule of docs/architecture.md section 4.

Inputs are raw rows, whose source columns are strings as typed in the event; natively typed columns
work too. Every rule turns a value it cannot read into null instead of failing, with Spark's ANSI mode
on or off, because one bad event must never stop a micro-batch. Deduplication (latest event wins) is
not done here: pass `keep=("_kafka_timestamp", "_offset")` to carry what the caller needs for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from pinterest_dagster.transforms.parse import parse_key

CLEANED_COLUMNS = {
    "pin": [
        "ind",
        "unique_id",
        "title",
        "description",
        "follower_count",
        "poster_name",
        "tag_list",
        "is_image_or_video",
        "image_src",
        "save_location",
        "category",
        "downloaded",
    ],
    "geo": ["ind", "country", "coordinates", "timestamp"],
    "user": ["ind", "user_name", "age", "date_joined"],
}

# The source's ways of saying "no value" (docs/architecture.md section 2), by the column they are seen in.
PLACEHOLDERS = {
    "title": ("No Title Data Available",),
    "description": ("No description available Story format", "No description available", "Untitled"),
    "poster_name": ("User Info Error",),
    "follower_count": ("User Info Error",),
    "tag_list": ("N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e",),
    "image_src": ("Image src error.",),
}
# Each means "no value" in any text column: a title "Image src error." is no title either, and the
# cleaned-table checks count every placeholder in every text column as a violation.
ALL_PLACEHOLDERS = tuple(sorted({text for texts in PLACEHOLDERS.values() for text in texts}))

PIN_TEXT_COLUMNS = (
    "unique_id",
    "title",
    "description",
    "poster_name",
    "tag_list",
    "is_image_or_video",
    "image_src",
    "category",
)
FOLLOWER_COUNT_PATTERN = r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmM]?)\s*$"
BLANK_PATTERN = r"(?U)^[\s\p{Cc}]*$"
SAVE_LOCATION_PREFIX = r"^\s*(?i:Local save in)\s*"


def clean_pin(df: DataFrame, keep: Sequence[str] = ()) -> DataFrame:
    """cleaned/pin columns from raw/pin rows, one output row per input row."""
    return _select_cleaned(
        df,
        "pin",
        keep,
        ind=parse_key(F.col("index")),
        follower_count=parse_follower_count(source_text("follower_count")),
        save_location=parse_save_location(source_text("save_location")),
        downloaded=parse_flag(F.col("downloaded")),
        **{name: source_text(name) for name in PIN_TEXT_COLUMNS},
    )


def clean_geo(df: DataFrame, keep: Sequence[str] = ()) -> DataFrame:
    """cleaned/geo columns from raw/geo rows, one output row per input row."""
    return _select_cleaned(
        df,
        "geo",
        keep,
        ind=parse_key(F.col("ind")),
        country=source_text("country"),
        coordinates=parse_coordinates(F.col("latitude"), F.col("longitude")),
        timestamp=parse_timestamp(F.col("timestamp")),
    )


def clean_user(df: DataFrame, keep: Sequence[str] = ()) -> DataFrame:
    """cleaned/user columns from raw/user rows, one output row per input row."""
    return _select_cleaned(
        df,
        "user",
        keep,
        ind=parse_key(F.col("ind")),
        user_name=user_name(source_text("first_name"), source_text("last_name")),
        age=F.col("age").try_cast("int"),
        date_joined=parse_timestamp(F.col("date_joined")),
    )


def _select_cleaned(df: DataFrame, kind: str, keep: Sequence[str], **columns: Column) -> DataFrame:
    """The cleaned columns in contract order, then the `keep` columns unchanged."""
    return df.select(*[columns[name].alias(name) for name in CLEANED_COLUMNS[kind]], *keep)


def source_text(name: str) -> Column:
    """A source text column with placeholders and blank values as null."""
    return null_placeholders(null_blank(F.col(name).cast("string")), ALL_PLACEHOLDERS)


def null_blank(text: Column) -> Column:
    """Null for a string with nothing visible in it, which carries no value in any column.

    Blank means Unicode whitespace (scraped text is full of non-breaking spaces) or control characters.
    """
    return F.when(~text.rlike(BLANK_PATTERN), text)


def null_placeholders(text: Column, placeholders: Sequence[str]) -> Column:
    """Null for a placeholder the source writes instead of a missing value (surrounding spaces ignored)."""
    return F.when(~F.trim(text).isin(*placeholders), text)


def parse_follower_count(text: Column) -> Column:
    """The follower count as a long: "437" -> 437, "306k" -> 306000, "1.5k" -> 1500, "3M" -> 3000000.

    Suffixes k/M in either case, blanks around, fractions rounded half up; anything else is null.
    Decimal arithmetic so "1.1k" is exactly 1100; long because counts in millions add up in aggregates.
    """
    text = text.cast("string")
    number = F.regexp_extract(text, FOLLOWER_COUNT_PATTERN, 1).try_cast("decimal(38,6)")
    suffix = F.upper(F.regexp_extract(text, FOLLOWER_COUNT_PATTERN, 2))
    multiplier = F.when(suffix == "K", 1_000).when(suffix == "M", 1_000_000).otherwise(1)
    return F.round(F.try_multiply(number, multiplier)).try_cast("long")


def parse_save_location(text: Column) -> Column:
    """The path alone: "Local save in /data/travel" -> "/data/travel".

    A value without the prefix is kept as it is: it is most likely already a path, and the contract
    knows no other format that would say otherwise. Nothing left after the prefix is null.
    """
    return null_blank(F.regexp_replace(text, SAVE_LOCATION_PREFIX, ""))


def parse_timestamp(text: Column) -> Column:
    """A UTC timestamp from ISO-8601-like text (`T` or space, fraction, zone), or null.

    Text without a zone means UTC whatever the session time zone is: it is read with a "Z" appended
    first, which fails (and falls back to the text as written) exactly when it already has a zone.
    Date-only text falls back too and so is read in the session time zone (UTC in this project), as
    is a natively typed timestamp column, which is rendered as text first.
    """
    return F.coalesce(
        F.concat(text.cast("string"), F.lit("Z")).try_cast("timestamp"),
        text.try_cast("timestamp"),
    )


def parse_flag(value: Column) -> Column:
    """An integer 0 or 1 (the source's `downloaded`); any other value is null."""
    number = value.try_cast("int")
    return F.when(number.isin(0, 1), number)


def parse_coordinates(latitude: Column, longitude: Column) -> Column:
    """`[latitude, longitude]` as array<double>; null unless both are numbers on the globe.

    Out-of-range, NaN and infinite values are treated as unreadable rather than kept as a wrong place.
    """
    lat = latitude.try_cast("double")
    lon = longitude.try_cast("double")
    on_globe = lat.between(-90.0, 90.0) & lon.between(-180.0, 180.0)
    return F.when(on_globe, F.array(lat, lon))


def user_name(first_name: Column, last_name: Column) -> Column:
    """First and last name joined by a space; the one present alone; null when both are missing."""
    return F.nullif(F.concat_ws(" ", F.trim(first_name), F.trim(last_name)), F.lit(""))
