"""raw -> cleaned and realtime in one step: `cleaned/pin` committed first, the other four side by side.

A micro-batch's merges are small, so each is mostly fixed cost (planning, reading the table's log, the
Delta commit) that leaves Spark's cores idle. One step writes all five tables of a batch: `cleaned/pin`
first (the table whose freshness users watch, and the one the realtime tables follow), then
`cleaned/geo`, `cleaned/user` and both realtime tables in threads of one Spark session. The step can be
subset: materializing one table from the UI writes that one only. `batch_job` selects the cleaned
tables only, with `full_refresh`.
"""


from concurrent.futures import ThreadPoolExecutor

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import DataFrame

from pinterest_dagster.defs.clean.assets import CLEANED_KEYS, cleaned_rows, cleaned_specs
from pinterest_dagster.defs.realtime.assets import REALTIME_KEYS, realtime_specs
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.batch_scope import IncrementalConfig, run_ranges
from pinterest_dagster.lib.ingestion import events_in
from pinterest_dagster.lib.io_managers import write_args, write_metadata
from pinterest_dagster.lib.microbatch import INGEST_STEP
from pinterest_dagster.lib.pools import LAKE_WRITES
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.lib.spark import COMPILED_CODE_FROM_ROWS, fit_code_generation

MERGE_STEP = "cleaned_and_realtime"
CONCURRENT_TABLES = 4


@dg.multi_asset(
    name=MERGE_STEP,
    specs=[*cleaned_specs, *realtime_specs],
    ins={f"raw_{kind}": dg.AssetIn(["raw", kind]) for kind in ("pin", "geo", "user")},
    can_subset=True,
    pool=LAKE_WRITES,
)
def cleaned_and_realtime(
    context: dg.AssetExecutionContext, config: IncrementalConfig, raw_pin: DataFrame, raw_geo: DataFrame,
    raw_user: DataFrame, pyspark: PySparkResource, lake: LakeResource,
):
    """Merges this run's batch into each selected table (`full_refresh`: rebuilds it from all of raw)."""
    spark = pyspark.spark_session
    raw = {"pin": raw_pin, "geo": raw_geo, "user": raw_user}
    if config.full_refresh:
        batch = raw
        fit_code_generation(spark, COMPILED_CODE_FROM_ROWS)
    else:
        if INGEST_STEP not in {node.name for node in context.job_def.nodes}:
            # Materialized alone (from the UI), the step would merge the events its run ingested: none.
            raise dg.Failure(
                f"{', '.join(k.to_user_string() for k in sorted(context.selected_asset_keys, key=str))} merge the events "
                "their own run ingests, and this run ingests none: materialize them together with raw/* (or let "
                "the streaming sensor or batch_job run), or run rebuild_job to recompute them from all of raw"
            )
        # The raw rows of this run's ranges: Delta skips every file whose offsets lie outside them.
        ranges = run_ranges(context, spark, lake)
        batch = {kind: events_in(table, ranges) for kind, table in raw.items()}
        fit_code_generation(spark, sum(r.size for r in ranges))  # a session setting: set once, before the threads

    def write(key: dg.AssetKey) -> dg.MaterializeResult:
        if key in CLEANED_KEYS:
            rows = cleaned_rows(CLEANED_KEYS[key], batch[CLEANED_KEYS[key]], config.full_refresh)
        else:
            table = REALTIME_KEYS[key]
            rows = (table.rebuilt(spark, lake, raw_pin) if config.full_refresh
                    else table.of_batch(spark, lake, raw_pin, batch["pin"]))
        # The spec's write metadata says how a batch merges; a rebuild overwrites. A micro-batch records the rows
        # its MERGE inserted and updated, from the MERGE's result: looking up the table's new version as well
        # would cost each table a DESCRIBE HISTORY, five per run.
        spec = {**context.assets_def.metadata_by_key[key], **({"write_mode": "overwrite"} if config.full_refresh else {})}
        result = delta.write_table(spark, rows, lake.path_for(key), **write_args(spec), describe=config.full_refresh)
        return dg.MaterializeResult(asset_key=key, metadata={**write_metadata(spark, rows, result, preview=False),
                                                              "write_mode": spec["write_mode"]})

    first = [key for key in context.selected_asset_keys if key == dg.AssetKey(["cleaned", "pin"])]
    yield from map(write, first)
    # One Spark session serves several threads; Dagster's context is used from this thread only.
    with ThreadPoolExecutor(CONCURRENT_TABLES) as pool:
        yield from pool.map(write, sorted(set(context.selected_asset_keys) - set(first), key=lambda k: k.path))


merge_assets = [cleaned_and_realtime]
