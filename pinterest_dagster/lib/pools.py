"""Dagster concurrency pools of the project.

`LAKE_WRITES`: every step that writes a table of the lake. The instance (infra/dagster/dagster.yaml)
limits each pool to 1 at run granularity, so runs that write the lake - streaming micro-batches,
batch_job, rebuild_job, maintenance, materializations launched from the UI - run one at a time and never race on a Delta commit.
"""

LAKE_WRITES = "lake_writes"
