"""The batch pipeline: the daily `batch_job`, which costs what arrived since the last one, and
`rebuild_job`, which recomputes everything from raw (backfills, rule changes)."""

from __future__ import annotations

import dagster as dg

from pinterest_dagster.defs.merge.assets import MERGE_STEP
from pinterest_dagster.lib.check_state import FULL_CHECK_TAG

# Both jobs select every table a catch-up can change: the events it ingests reach cleaned and realtime
# as a micro-batch's do, and the nine aggregated tables are recomputed from cleaned.
BATCH_SELECTION = dg.AssetSelection.groups("raw", "cleaned", "realtime", "aggregated")

# The rebuild's merge step recomputes cleaned and realtime from every raw event (the events as sent, so
# today's rules apply to every field they carried), which also heals a micro-batch whose merge never
# completed.
FULL_REFRESH = {"ops": {MERGE_STEP: {"config": {"full_refresh": True}}}}

batch_job = dg.define_asset_job(
    name="batch_job",
    selection=BATCH_SELECTION,
    description="The daily batch: raw caught up with Kafka (gaps included; while the sensor streams, up to its "
    "cursor), what that brought merged into cleaned and realtime as a micro-batch's events are, then the nine "
    "aggregated tables from the cleaned tables streaming maintains, with their checks.",
    # One process for the whole run: a Spark session costs seconds to start, so steps share one.
    executor_def=dg.in_process_executor,
)

rebuild_job = dg.define_asset_job(
    name="rebuild_job",
    selection=BATCH_SELECTION,
    description="The full rebuild, for backfills and rule changes: raw caught up with Kafka, cleaned and realtime "
    "recomputed from every raw event, then the nine aggregated tables, with their checks.",
    executor_def=dg.in_process_executor,
    config=FULL_REFRESH,
    # Its raw checks read all of raw; batch_job's read what arrived since they last passed.
    tags={FULL_CHECK_TAG: "full"},
)
