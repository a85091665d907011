"""The streaming micro-batch: exact offset ranges -> raw and rejects -> cleaned -> realtime."""

import dagster as dg

from pinterest_dagster.lib.streaming_runs import STREAMING_JOB, STREAMING_TAGS

streaming_job = dg.define_asset_job(
    name=STREAMING_JOB,
    selection=dg.AssetSelection.groups("raw", "cleaned", "realtime").without_checks(),
    description="One micro-batch named by the sensor's offset ranges: raw, rejects, cleaned and realtime tables.",
    tags=STREAMING_TAGS,
    # A Spark session per step would cost seconds each: the run's steps share one process.
    executor_def=dg.in_process_executor,
)
