"""The daily batch: catch raw up with Kafka, merge into cleaned, rebuild the aggregated tables."""

from __future__ import annotations

import dagster as dg

from pinterest_dagster.defs.merge.assets import MERGE_STEP

# The daily run rebuilds the cleaned tables from every raw event, which also heals any micro-batch
# whose merge never completed; streaming runs merge only what they ingested.
FULL_REFRESH = {"ops": {MERGE_STEP: {"config": {"full_refresh": True}}}}

batch_job = dg.define_asset_job(
    name="batch_job",
    selection=dg.AssetSelection.groups("raw", "cleaned", "aggregated"),
    description="Raw catch-up from Kafka -> cleaned tables -> the nine aggregated tables, with their checks.",
    # One process for the whole run: a Spark session costs seconds to start, so steps share one.
    executor_def=dg.in_process_executor,
    config=FULL_REFRESH,
)
