"""raw/pin -> realtime: who is popular right now, updated by every streaming micro-batch."""

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import DataFrame

from pinterest_dagster.lib.batch_scope import IncrementalConfig, batch_scope, full_refresh_scope
from pinterest_dagster.lib.io_managers import FULL_REFRESH_OUTPUT, write_mode_metadata
from pinterest_dagster.lib.pools import LAKE_WRITES
from pinterest_dagster.lib.realtime_state import REALTIME_TABLES, RealtimeTable
from pinterest_dagster.lib.resources import LakeResource


def realtime_asset(table: RealtimeTable) -> dg.AssetsDefinition:
    @dg.asset(
        key=["realtime", table.name],
        ins={"raw_pin": dg.AssetIn(["raw", "pin"])},
        # After cleaned/pin: a micro-batch commits the table whose freshness users watch first.
        deps=[dg.AssetKey(["cleaned", "pin"])],
        group_name="realtime",
        kinds={"spark", "delta"},
        pool=LAKE_WRITES,
        description=table.description,
        metadata=write_mode_metadata("merge", table.merge_keys),
    )
    def _realtime(
        context: dg.AssetExecutionContext, config: IncrementalConfig, raw_pin: DataFrame,
        pyspark: PySparkResource, lake: LakeResource,
    ):
        spark = pyspark.spark_session
        if config.full_refresh:
            return dg.Output(table.rebuilt(spark, lake, full_refresh_scope(spark, raw_pin)), metadata=FULL_REFRESH_OUTPUT)
        return table.of_batch(spark, lake, raw_pin, batch_scope(context, spark, lake, raw_pin))

    return _realtime


realtime_assets = [realtime_asset(table) for table in REALTIME_TABLES.values()]
