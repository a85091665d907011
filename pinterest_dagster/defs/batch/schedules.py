"""The original system's daily DAG: the batch job every day at 00:00 UTC (PINTEREST_BATCH_CRON), on by default."""

from __future__ import annotations

import dagster as dg

from pinterest_dagster.defs.batch.jobs import batch_job


def build_daily_batch_schedule(cron: str) -> dg.ScheduleDefinition:
    """batch_job on `cron` (UTC). Running from the daemon's start, as the streaming sensor does: a pipeline whose
    daily tables wait for someone to turn their schedule on is not the original system's."""
    return dg.ScheduleDefinition(
        name="daily_batch_schedule",
        job=batch_job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Runs batch_job on '{cron}' (UTC): the daily analytics.",
    )
