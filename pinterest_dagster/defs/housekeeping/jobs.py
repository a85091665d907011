"""Dagster's own storage, bounded: successful micro-batch runs are deleted after a while.

Every micro-batch is a run with its event log (about forty events), and at a run every few seconds
Dagster's storage would grow without end. `housekeeping_job` deletes the successful runs of the routine
jobs older than `keep_successful_streaming_runs_hours`: `streaming_job`, the freshness checks' sensor,
`maintenance_job` (up to four runs a pass) and its own. Failed and canceled runs (what someone may want to look into) and the runs of every other job
(batch_job, rebuild_job, materializations from the UI) are kept. A deleted micro-batch that retried or re-planned a
failed one leaves the failed group's first run tagged `pinterest/settled`.
What `delete_run` leaves behind (Dagster 1.13) goes too: the run's captured step logs (files under the
compute log manager's `storage/<run id>/`); on a SQLite instance, the run's own event-log database file; and
the asset check executions of deleted runs, which the freshness checks' sensor records one per check every
minute (each check's latest stays, so the UI keeps showing its current state).
Sensor ticks that succeeded or skipped go after the same age, with their captured logs: the streaming sensor
ticks every few seconds, and the instance's `retention` (infra/dagster/dagster.yaml) counts in whole days
only. Failed ticks stay for that retention (30 days), to look into.
"""

import os
from datetime import datetime, timedelta, timezone

import dagster as dg
import sqlalchemy as sa
from dagster._core.scheduler.instigation import InstigatorType, TickStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable

from pinterest_dagster.lib.streaming_runs import FAILED_STATUSES, FRESHNESS_SENSOR, REPLANS_TAG, SETTLED_TAG, STREAMING_JOB

# The routine jobs whose successful runs are deleted after a while (names, not imports: maintenance's module
# imports what this one is imported beside).
ROUTINE_JOBS = (STREAMING_JOB, "maintenance_job", "housekeeping_job")

SENSOR_NAME_TAG = "dagster/sensor_name"  # set by Dagster on every run a sensor requests

DELETE_CHUNK = 500  # runs or ticks looked up per query, so a first clean-up of a large backlog stays small per step

PURGED_TICKS = [TickStatus.SUCCESS, TickStatus.SKIPPED]  # failed ones stay for the instance's retention


def delete_orphaned_check_executions(instance: dg.DagsterInstance) -> int:
    """The asset check executions whose run is gone, but each check's latest (whichever run recorded it): how
    many rows went. `delete_run` keeps them and Dagster has no public call that deletes them."""
    executions = AssetCheckExecutionsTable
    latest = (sa.select(sa.func.max(executions.c.id).label("id"))
              .group_by(executions.c.asset_key, executions.c.check_name, executions.c.partition).subquery())
    # The derived table, not the table itself, in the sub-selects: MySQL refuses to delete from a table that a
    # sub-select of the same statement reads.
    older = executions.c.id.not_in(sa.select(latest.c.id))
    storage = instance.event_log_storage
    with storage.index_connection() as conn:
        run_ids = [row[0] for row in conn.execute(sa.select(executions.c.run_id).where(older).distinct())]
    deleted = 0
    for chunk in (run_ids[i:i + DELETE_CHUNK] for i in range(0, len(run_ids), DELETE_CHUNK)):
        gone = set(chunk) - set(instance.get_run_ids(dg.RunsFilter(run_ids=chunk)))
        if gone:
            with storage.index_connection() as conn:
                deleted += conn.execute(executions.delete().where(executions.c.run_id.in_(gone)).where(older)).rowcount
    return deleted


def delete_run_fully(instance: dg.DagsterInstance, run_id: str) -> None:
    """`delete_run`, and what it leaves: the run's captured step logs and, on SQLite, its event-log database.
    The logs go first: once the run is gone, no later clean-up would find them."""
    instance.compute_log_manager.delete_logs(prefix=[run_id])  # storage/<run id>/compute_logs/ on a local instance
    instance.delete_run(run_id)
    delete_run_database(instance, run_id)  # after delete_run, which creates it when it did not exist


def purge_old_sensor_ticks(instance: dg.DagsterInstance, before: datetime) -> int:
    """Every sensor's successful and skipped ticks from before `before`, with the logs a tick captured: how many
    ticks went."""
    purged = 0
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        origin_id, selector_id = state.instigator_origin_id, state.selector_id
        older_than = before.timestamp()
        while True:  # newest first, a chunk at a time: a first clean-up can meet a week of ticks
            ticks = instance.get_ticks(origin_id, selector_id, before=older_than, limit=DELETE_CHUNK,
                                       statuses=PURGED_TICKS)
            for tick in ticks:
                if tick.log_key:
                    instance.compute_log_manager.delete_logs(log_key=tick.log_key)
            purged += len(ticks)
            if len(ticks) < DELETE_CHUNK:
                break
            older_than = ticks[-1].timestamp
        instance.purge_ticks(origin_id, selector_id, before=before.timestamp(), tick_statuses=PURGED_TICKS)
    return purged


def delete_run_database(instance: dg.DagsterInstance, run_id: str) -> None:
    """On a SQLite instance each run's events are a database of their own (history/runs/<run id>.db), which
    `delete_run` empties but leaves: about 115 KB each, measured by the soak. Other storages have none."""
    path_for_shard = getattr(instance.event_log_storage, "path_for_shard", None)
    if path_for_shard is None:
        return
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path_for_shard(run_id) + suffix)
        except FileNotFoundError:
            pass
    # The storage remembers the databases it has created: a later read of the run in this process (none is
    # expected) creates it again, empty, rather than failing on a file without tables.
    getattr(instance.event_log_storage, "_initialized_dbs", set()).discard(run_id)


class HousekeepingConfig(dg.Config):
    # The age after which the routine runs and the sensors' successful or skipped ticks go.
    keep_successful_streaming_runs_hours: float = 24.0


def mark_settled(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """Before a successful micro-batch that retried or re-planned a failed one goes: the failed group's first run
    (kept, as failed runs are) is tagged settled, so the sensor, which may look for failures further back after a
    daemon outage, does not take it for one that failed for good (lib/streaming_runs.py)."""
    if run.job_name != STREAMING_JOB:
        return
    for group in {run.root_run_id, run.tags.get(REPLANS_TAG)} - {None}:
        first = instance.get_run_by_id(group)
        # Only a failed one (a UI re-execution of a successful run has one too), and once: tagging updates the run.
        if first and first.status in FAILED_STATUSES and SETTLED_TAG not in first.tags:
            instance.add_run_tags(group, {SETTLED_TAG: "true"})


def delete_old_successful_runs(instance: dg.DagsterInstance, cutoff: datetime, log=lambda message: None) -> int:
    """The successful runs of the routine jobs and of the freshness checks last updated before `cutoff`, with
    what `delete_run` leaves of them: how many went."""
    success = {"statuses": [dg.DagsterRunStatus.SUCCESS], "updated_before": cutoff}
    deleted = 0
    for old in (*(dg.RunsFilter(job_name=job, **success) for job in ROUTINE_JOBS),
                dg.RunsFilter(tags={SENSOR_NAME_TAG: FRESHNESS_SENSOR}, **success)):
        while True:
            chunk = instance.get_runs(old, limit=DELETE_CHUNK)
            for run in chunk:
                mark_settled(instance, run)
                delete_run_fully(instance, run.run_id)
            deleted += len(chunk)
            if len(chunk) < DELETE_CHUNK:
                break
            log(f"deleted {deleted:,} runs so far")
    return deleted


def clean_up(instance: dg.DagsterInstance, keep_hours: float, log=lambda message: None) -> dict:
    """All of housekeeping, keeping `keep_hours`: what went, by kind, and the cutoff."""
    cutoff = datetime.now(timezone.utc) - timedelta(hours=keep_hours)
    runs = delete_old_successful_runs(instance, cutoff, log)
    check_executions = delete_orphaned_check_executions(instance)
    ticks = purge_old_sensor_ticks(instance, cutoff)
    log(f"deleted {runs:,} successful {', '.join(ROUTINE_JOBS)} and freshness check runs last updated before "
        f"{cutoff:%Y-%m-%d %H:%M} UTC, {check_executions:,} asset check executions of deleted runs and "
        f"{ticks:,} successful or skipped sensor ticks")
    return {"runs_deleted": runs, "check_executions_deleted": check_executions, "sensor_ticks_deleted": ticks,
            "cutoff": cutoff.isoformat(timespec="seconds")}


# An output of type Nothing: the counts are metadata, stored by no IO manager (the project's stores tables).
@dg.op(out=dg.Out(dg.Nothing),
       description="Deletes successful streaming_job, freshness check, maintenance_job and housekeeping_job "
                   "runs, with their event logs, step logs and asset check executions, and successful or skipped "
                   "sensor ticks, older than the configured age.")
def delete_old_streaming_runs(context: dg.OpExecutionContext, config: HousekeepingConfig):
    return dg.Output(None, metadata=clean_up(context.instance, config.keep_successful_streaming_runs_hours,
                                             context.log.info))


@dg.job(description="Keeps Dagster's storage bounded: deletes old successful micro-batch and maintenance runs, and "
                    "old successful or skipped sensor ticks.")
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
        description=f"Runs housekeeping_job on '{cron}' (UTC): successful micro-batch runs and successful or skipped "
                    f"sensor ticks are kept {keep_hours:g} h.",
    )
