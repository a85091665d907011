"""Checks of the cleaned tables against the contract; the blocking ones stop the aggregated tables."""

from __future__ import annotations

import dagster as dg
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pinterest_dagster.lib.spark import fit_code_generation_to
from pinterest_dagster.transforms.clean import ALL_PLACEHOLDERS, BLANK_PATTERN

MIN_AGE, MAX_AGE = 13, 120  # Pinterest's minimum age; anything above 120 is a data error


def count_where(condition: Column) -> Column:
    return F.sum(F.when(condition, 1).otherwise(0))


def placeholder_or_blank_count(df: DataFrame) -> Column:
    """Rows x string columns still holding a placeholder or a blank string."""
    text_columns = [f.name for f in df.schema.fields if isinstance(f.dataType, T.StringType)]
    bad = [F.col(c).isin(list(ALL_PLACEHOLDERS)) | F.col(c).rlike(BLANK_PATTERN) for c in text_columns]
    return sum((count_where(condition) for condition in bad), F.lit(0))


# Contract rules beyond the common ones, per table: name -> (violations, blocking, description).
SPECIFIC_RULES = {
    "pin": {
        "follower_count_non_negative": (
            lambda: count_where(F.col("follower_count") < 0), True,
            "follower_count is a non-negative integer or null",
        ),
    },
    "geo": {
        "coordinates_in_range": (
            lambda: count_where(
                (F.size("coordinates") != 2)
                | ~F.col("coordinates")[0].between(-90, 90)
                | ~F.col("coordinates")[1].between(-180, 180)
            ), False,
            "coordinates are [latitude in -90..90, longitude in -180..180] or null",
        ),
    },
    "user": {
        "age_plausible": (
            lambda: count_where(~F.col("age").between(MIN_AGE, MAX_AGE)), False,
            f"age is null or between {MIN_AGE} and {MAX_AGE}",
        ),
    },
}

COMMON_RULES = {
    "no_placeholders_or_blanks": (None, True, "no placeholder text or blank string is left in any text column"),
    "ind_unique": (None, True, "one row per ind, and no null ind"),
}


def cleaned_table_checks(kind: str) -> dg.AssetChecksDefinition:
    key = dg.AssetKey(["cleaned", kind])
    rules = {**COMMON_RULES, **SPECIFIC_RULES[kind]}

    @dg.multi_asset_check(
        name=f"cleaned_{kind}_contract",
        specs=[
            dg.AssetCheckSpec(name, asset=key, blocking=blocking, description=description)
            for name, (_, blocking, description) in rules.items()
        ],
        ins={"table": dg.AssetIn(key)},
    )
    def _checks(table: DataFrame):
        fit_code_generation_to([table])
        metrics = table.agg(
            F.count(F.lit(1)).alias("rows"),
            F.count_distinct("ind").alias("distinct_ind"),
            count_where(F.col("ind").isNull()).alias("null_ind"),
            placeholder_or_blank_count(table).alias("no_placeholders_or_blanks"),
            *(violations().alias(name) for name, (violations, _, _) in SPECIFIC_RULES[kind].items()),
        ).first()
        duplicates = metrics["rows"] - metrics["distinct_ind"] - metrics["null_ind"]
        yield dg.AssetCheckResult(
            check_name="ind_unique",
            passed=duplicates == 0 and metrics["null_ind"] == 0,
            metadata={"rows": metrics["rows"], "duplicate_ind": duplicates, "null_ind": metrics["null_ind"]},
        )
        for name in rules.keys() - {"ind_unique"}:
            yield dg.AssetCheckResult(
                check_name=name, passed=metrics[name] == 0, metadata={"violations": metrics[name]}
            )

    return _checks


cleaned_checks = [cleaned_table_checks(kind) for kind in SPECIFIC_RULES]
