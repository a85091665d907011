"""cleaned -> aggregated: the nine analytics tables of the daily batch, rebuilt in full each run."""

from __future__ import annotations

import dagster as dg
from pyspark.sql import DataFrame

from pinterest_dagster.lib.io_managers import write_mode_metadata
from pinterest_dagster.lib.spark import fit_code_generation
from pinterest_dagster.transforms.aggregate import AGGREGATES


def aggregated_asset(name: str) -> dg.AssetsDefinition:
    compute, inputs = AGGREGATES[name]

    @dg.asset(
        name=name,
        key_prefix="aggregated",
        ins={table: dg.AssetIn(["cleaned", table]) for table in inputs},
        group_name="aggregated",
        kinds={"spark", "delta"},
        description=compute.__doc__,
        metadata={**write_mode_metadata("overwrite"), "preview": True},
    )
    def _aggregated(**tables: DataFrame) -> DataFrame:
        frames = [tables[table] for table in inputs]
        # A count of a Delta table is answered from its log's statistics: no data is read.
        fit_code_generation(frames[0].sparkSession, sum(frame.count() for frame in frames))
        return compute(*frames)

    return _aggregated


aggregated_assets = [aggregated_asset(name) for name in AGGREGATES]
