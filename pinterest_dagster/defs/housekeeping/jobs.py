"""Dagster's own storage, bounded: successful micro-batch runs are deleted after a while.

Every micro-batch is a run with its event log (about forty events), and at a run every few seconds
Dagster's storage would grow without end. `housekeeping_job` deletes the successful runs of the routine
jobs older than `keep_successful_streaming_runs_hours`: `streaming_job`, the freshness checks' sensor,
`maintenance_job` (a run per table per pass: more runs than micro-batches when passes are frequent) and
its own. Failed and canceled runs (what someone may want to look into) and the runs of every other job
(batch_job, rebuild_job, materializations from the UI) are kept.
Tick retention is the instance's business (`retention` in infra/dagster/dagster.yaml).
"""

from datetime import datetime, timedelta, timezone

import dagster as dg

from pinterest_dagster.lib.streaming_runs import FRESHNESS_SENSOR, STREAMING_JOB

# The routine jobs whose successful runs are deleted after a while (names, not imports: maintenance's module
# imports what this one is imported beside).
ROUTINE_JOBS = (STREAMING_JOB, "maintenance_job", "housekeeping_job")

SENSOR_NAME_TAG = "dagster/sensor_name"  # set by Dagster on every run a sensor requests

DELETE_CHUNK = 500  # runs looked up per query, so a first clean-up of a large backlog stays small per step


class HousekeepingConfig(dg.Config):
    keep_successful_streaming_runs_hours: float = 24.0


# An output of type Nothing: the count is metadata, stored by no IO manager (the project's stores tables).
@dg.op(out=dg.Out(dg.Nothing),
       description="Deletes successful streaming_job, freshness check, maintenance_job and housekeeping_job "
                   "runs, with their event logs, older than the configured age.")
def delete_old_streaming_runs(context: dg.OpExecutionContext, config: HousekeepingConfig):
    cutoff = datetime.now(timezone.utc) - timedelta(hours=config.keep_successful_streaming_runs_hours)
    success = {"statuses": [dg.DagsterRunStatus.SUCCESS], "updated_before": cutoff}
    deleted = 0
    for old in (*(dg.RunsFilter(job_name=job, **success) for job in ROUTINE_JOBS),
                dg.RunsFilter(tags={SENSOR_NAME_TAG: FRESHNESS_SENSOR}, **success)):
        while True:
            run_ids = [run.run_id for run in context.instance.get_runs(old, limit=DELETE_CHUNK)]
            for run_id in run_ids:
                context.instance.delete_run(run_id)
            deleted += len(run_ids)
            if len(run_ids) < DELETE_CHUNK:
                break
            context.log.info(f"deleted {deleted:,} runs so far")
    context.log.info(f"deleted {deleted:,} successful {', '.join(ROUTINE_JOBS)} and freshness check runs last updated before "
                     f"{cutoff:%Y-%m-%d %H:%M} UTC")
    return dg.Output(None, metadata={"runs_deleted": deleted, "cutoff": cutoff.isoformat(timespec="seconds")})


@dg.job(description="Keeps Dagster's run storage bounded: deletes old successful micro-batch and maintenance runs.")
def housekeeping_job():
    delete_old_streaming_runs()


def build_housekeeping_schedule(cron: str, keep_hours: float) -> dg.ScheduleDefinition:
    """housekeeping_job on `cron` (UTC), keeping successful micro-batch runs `keep_hours`
    (PINTEREST_HOUSEKEEPING_CRON, PINTEREST_KEEP_SUCCESSFUL_RUNS_HOURS)."""
    return dg.ScheduleDefinition(
        name="housekeeping_schedule",
        job=housekeeping_job,
        cron_schedule=cron,
        execution_timezone="UTC",
        run_config={"ops": {"delete_old_streaming_runs": {"config": {"keep_successful_streaming_runs_hours": keep_hours}}}},
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Runs housekeeping_job on '{cron}' (UTC): successful micro-batch runs are kept {keep_hours:g} h.",
    )
