"""The streaming micro-batch: exact offset ranges -> raw and rejects -> cleaned -> realtime."""

import dagster as dg

STREAMING_TAGS = {"pipeline": "streaming"}

streaming_job = dg.define_asset_job(
    name="streaming_job",
    selection=dg.AssetSelection.groups("raw", "cleaned", "realtime").without_checks(),
    description="One micro-batch named by the sensor's offset ranges: raw, rejects, cleaned and realtime tables.",
    tags=STREAMING_TAGS,
    # A Spark session per step would cost seconds each: the run's steps share one process.
    executor_def=dg.in_process_executor,
)
