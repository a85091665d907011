"""The batch scope of a streaming run: which raw rows its cleaned and realtime steps merge.

A sensor's run names its offset ranges in its config; a catch-up run finds them in the ingestion log.
The run's merge step reads only those rows of raw, so a run costs its batch, not the history:
the raw tables keep file statistics of `_topic`, `_partition` and `_offset`, and Delta skips every
file whose offsets lie outside the ranges.
"""

from __future__ import annotations

import dagster as dg

from pinterest_dagster.lib.ingestion import ranges_ingested_by, run_group_id
from pinterest_dagster.lib.offsets import OffsetRange
from pinterest_dagster.lib.resources import LakeResource


class IncrementalConfig(dg.Config):
    """By default a run merges what its own ingestion brought; `full_refresh` rebuilds from all of raw."""

    full_refresh: bool = False


def run_ranges(context: dg.AssetExecutionContext, spark, lake: LakeResource) -> list[OffsetRange]:
    """The offset ranges this run ingested: the ones its config names (a sensor's micro-batch, no
    query needed), else the ones the ingestion log records for its run group (a catch-up run, or a
    micro-batch that also healed gaps, in this attempt or an earlier one)."""
    ingest_config = context.run.run_config.get("ops", {}).get("ingest_kafka_events", {}).get("config", {})
    if ingest_config.get("ranges") and not ingest_config.get("heal_gaps"):
        return [OffsetRange(r["topic"], r["partition"], r["start"], r["end"]) for r in ingest_config["ranges"]]
    return ranges_ingested_by(spark, lake, run_group_id(context.run))
