"""Dagster concurrency pools of the project.

`LAKE_WRITES`: every step that writes a table of the lake. The instance (infra/dagster/dagster.yaml)
limits each pool to 1 at run granularity, so runs that write the lake - streaming micro-batches,
batch_job, rebuild_job, maintenance, materializations launched from the UI - run one at a time and never race on a Delta commit.

`RAW_COMPACTION`: the compaction of raw/pin, geo and user (`raw_compaction_job`), one table at a time, beside
the micro-batches. A compaction changes no data and a micro-batch appends to raw, so Delta lets both commit
(a conflict, as when a retried micro-batch replaces a range being compacted, is tried again:
`lib/delta.retry_conflicts`); in `LAKE_WRITES` the micro-batches waited 14-29 s for each raw table's turn
(docs/benchmarks.md).
"""

LAKE_WRITES = "lake_writes"
RAW_COMPACTION = "raw_compaction"
