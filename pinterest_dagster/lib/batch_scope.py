"""The batch scope of a streaming run: which raw rows its cleaned and realtime steps merge.

A sensor's run names its offset ranges in its config; a catch-up run finds them in the ingestion log.
The run's merge step reads only those rows of raw, so a run costs its batch, not the history:
the raw tables keep file statistics of `_topic`, `_partition` and `_offset`, and Delta skips every
file whose offsets lie outside the ranges.
"""

from __future__ import annotations

import dagster as dg

from pinterest_dagster.lib.ingestion import ranges_ingested_by
from pinterest_dagster.lib.offsets import OffsetRange
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.lib.streaming_runs import configured_ranges, ingest_config, replanned_groups, run_group_id


class IncrementalConfig(dg.Config):
    """By default a run merges what its own ingestion brought; `full_refresh` rebuilds from all of raw."""

    full_refresh: bool = False


def run_ranges(context: dg.AssetExecutionContext, spark, lake: LakeResource) -> list[OffsetRange]:
    """The offset ranges this run ingested: the ones its config names (a sensor's micro-batch, no
    query needed), else the ones the ingestion log records for its run group (a catch-up run, or a
    micro-batch that also healed gaps, in this attempt or an earlier one). A re-planned micro-batch also merges
    what the run groups it re-plans ingested, back to the first: the gaps a group healed are logged, so no later
    run ingests or merges them again, but its merge failed for good. (Maintenance coalesces log rows older than a
    day, and their run ids with them, except those of run groups that failed or are in flight.)"""
    ranges = configured_ranges(context.run)
    if ranges and not ingest_config(context.run).get("heal_gaps"):
        return ranges
    return ranges_ingested_by(spark, lake, run_group_id(context.run), *replanned_groups(context.instance, context.run))
