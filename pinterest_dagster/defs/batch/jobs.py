"""The daily batch: catch raw up with Kafka, merge into cleaned, rebuild the aggregated tables."""

from __future__ import annotations

import dagster as dg

batch_job = dg.define_asset_job(
    name="batch_job",
    selection=dg.AssetSelection.groups("raw", "cleaned", "aggregated"),
    description="Raw catch-up from Kafka -> cleaned tables -> the nine aggregated tables, with their checks.",
    # One process for the whole run: a Spark session costs seconds to start, so steps share one.
    executor_def=dg.in_process_executor,
)
