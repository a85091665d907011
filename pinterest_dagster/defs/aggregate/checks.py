"""Checks of the nine analytics tables, beside them: one row per group, and no null anywhere (docs/architecture.md
section 4 leaves out every row whose group or measured value is null)."""

from concurrent.futures import ThreadPoolExecutor

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pinterest_dagster.lib import delta
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.transforms.aggregate import AGGREGATES

CHECK_NAME = "one_row_per_group_and_no_nulls"


def group_metrics(table: DataFrame, group_by: tuple[str, ...]) -> dict[str, int]:
    """Rows, distinct groups and rows holding a null, from one query."""
    any_null = F.greatest(*[F.col(c).isNull() for c in table.columns])  # every table has 2 columns or more
    groups = F.count_distinct(*map(F.col, group_by)) if group_by else F.least(F.count(F.lit(1)), F.lit(1))
    row = table.agg(F.count(F.lit(1)).alias("rows"), groups.alias("groups"),
                    F.coalesce(F.sum(any_null.cast("int")), F.lit(0)).alias("rows_with_nulls")).first()
    return {"rows": row["rows"], "groups": row["groups"], "rows_with_nulls": row["rows_with_nulls"]}


def group_result(name: str, metrics: dict[str, int]) -> dg.AssetCheckResult:
    # A null in a group column is not counted by count_distinct: rows_with_nulls catches it.
    duplicates = metrics["rows"] - metrics["groups"] - metrics["rows_with_nulls"]
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(["aggregated", name]), check_name=CHECK_NAME,
        passed=duplicates <= 0 and metrics["rows_with_nulls"] == 0,
        metadata={**metrics, "rows_beyond_one_per_group": max(duplicates, 0),
                  "group_by": ", ".join(AGGREGATES[name].group_by) or "(the whole table: one row)"},
    )


@dg.multi_asset_check(
    name="aggregated_contract",
    specs=[
        dg.AssetCheckSpec(CHECK_NAME, asset=dg.AssetKey(["aggregated", name]),
                          description=f"One row per {', '.join(aggregate.group_by) or 'table'}, and no null in any column.")
        for name, aggregate in AGGREGATES.items()
    ],
    can_subset=True,
)
def aggregated_contract(context: dg.AssetCheckExecutionContext, pyspark: PySparkResource, lake: LakeResource):
    """One step for the selected tables, queried side by side: each is one small scan."""
    spark = pyspark.spark_session
    names = sorted(key.asset_key.path[-1] for key in context.selected_asset_check_keys)

    def check(name: str) -> dg.AssetCheckResult:
        table = delta.read_table(spark, lake.path("aggregated", name))
        return group_result(name, group_metrics(table, AGGREGATES[name].group_by))

    with ThreadPoolExecutor(3) as pool:
        yield from pool.map(check, names)


aggregated_checks = [aggregated_contract]
