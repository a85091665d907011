"""Checks of the cleaned tables against the contract; the blocking ones stop the aggregated tables."""

from concurrent.futures import ThreadPoolExecutor

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pinterest_dagster.lib import delta
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.lib.spark import fit_code_generation_to
from pinterest_dagster.transforms.clean import ALL_PLACEHOLDERS, BLANK_PATTERN

MIN_AGE, MAX_AGE = 13, 120  # Pinterest's minimum age; anything above 120 is a data error


def count_where(condition: Column) -> Column:
    """Rows where `condition` holds: 0 on an empty table (a plain sum over no rows is null)."""
    return F.coalesce(F.sum(F.when(condition, 1).otherwise(0)), F.lit(0))


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


def contract_results(kind: str, table: DataFrame) -> list[dg.AssetCheckResult]:
    """Every contract check of one cleaned table, from one query."""
    key = dg.AssetKey(["cleaned", kind])
    metrics = table.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct("ind").alias("distinct_ind"),
        count_where(F.col("ind").isNull()).alias("null_ind"),
        placeholder_or_blank_count(table).alias("no_placeholders_or_blanks"),
        *(violations().alias(name) for name, (violations, _, _) in SPECIFIC_RULES[kind].items()),
    ).first()
    duplicates = metrics["rows"] - metrics["distinct_ind"] - metrics["null_ind"]
    results = [dg.AssetCheckResult(
        asset_key=key, check_name="ind_unique", passed=duplicates == 0 and metrics["null_ind"] == 0,
        metadata={"rows": metrics["rows"], "duplicate_ind": duplicates, "null_ind": metrics["null_ind"]},
    )]
    for name in [*COMMON_RULES.keys() - {"ind_unique"}, *SPECIFIC_RULES[kind]]:
        results.append(dg.AssetCheckResult(
            asset_key=key, check_name=name, passed=metrics[name] == 0, metadata={"violations": metrics[name]}
        ))
    return results


@dg.multi_asset_check(
    name="cleaned_contract",
    specs=[
        dg.AssetCheckSpec(name, asset=dg.AssetKey(["cleaned", kind]), blocking=blocking, description=description)
        for kind in SPECIFIC_RULES
        for name, (_, blocking, description) in {**COMMON_RULES, **SPECIFIC_RULES[kind]}.items()
    ],
    can_subset=True,
)
def cleaned_contract(context: dg.AssetCheckExecutionContext, pyspark: PySparkResource, lake: LakeResource):
    """One step for the three tables, queried concurrently: each is one scan whose time is mostly fixed cost."""
    spark = pyspark.spark_session
    selected = context.selected_asset_check_keys
    kinds = sorted({key.asset_key.path[-1] for key in selected})
    tables = {kind: delta.read_table(spark, lake.path("cleaned", kind)) for kind in kinds}
    fit_code_generation_to(list(tables.values()))
    with ThreadPoolExecutor(len(kinds)) as pool:
        for results in pool.map(lambda kind: contract_results(kind, tables[kind]), kinds):
            yield from (r for r in results if dg.AssetCheckKey(r.asset_key, r.check_name) in selected)


cleaned_checks = [cleaned_contract]
