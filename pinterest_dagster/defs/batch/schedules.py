"""The original system's daily DAG: the batch job every day at 00:00 UTC."""

from __future__ import annotations

import dagster as dg

from pinterest_dagster.defs.batch.jobs import batch_job

daily_batch_schedule = dg.ScheduleDefinition(
    name="daily_batch_schedule",
    job=batch_job,
    cron_schedule="0 0 * * *",
    execution_timezone="UTC",
    description="Runs batch_job daily at midnight UTC.",
)
