"""What streaming owns right now, read from the Dagster instance: the runs in flight and the sensor's cursor.

A run that plans offsets itself (the daily catch-up, a micro-batch healing gaps) leaves these to
streaming, so no range is ingested by two runs for nothing.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import dagster as dg
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

from pinterest_dagster.lib.microbatch import INGEST_STEP, parse_cursor, parse_failures_checked_at, partition_of
from pinterest_dagster.lib.offsets import OffsetRange

SENSOR_NAME = "kafka_microbatch_sensor"
FRESHNESS_SENSOR = "freshness_checks_sensor"  # evaluates the streamed tables' freshness checks, a run at a time
STREAMING_JOB = "streaming_job"
STREAMING_TAGS = {"pipeline": "streaming"}
HEALS_TAG = "pinterest/heals_gaps"  # a micro-batch that also ingests the gaps it finds
HEALED_TAG = "pinterest/healed_ranges"  # set by a run on the ranges it found missing and ingested
REPLANS_TAG = "pinterest/replans_run"  # the run whose ranges a re-planned micro-batch ingests again
# Set by housekeeping on a failed run group's first run when it deletes the group's successful retry or re-plan:
# the failure stays settled without the run that settled it.
SETTLED_TAG = "pinterest/settled"

ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
]
# A sensor whose last tick started longer ago than this is not being evaluated: no daemon runs it.
SENSOR_ALIVE_SECONDS = 60


def run_group_id(run: dg.DagsterRun) -> str:
    """The id shared by a run and its retries and re-executions: what the ingestion log records."""
    return run.root_run_id or run.run_id


def streaming_runs_in_flight(instance: dg.DagsterInstance, statuses: list[dg.DagsterRunStatus] = ACTIVE_STATUSES) -> int:
    return instance.get_runs_count(dg.RunsFilter(tags=STREAMING_TAGS, statuses=statuses))


def ingest_config(run: dg.DagsterRun) -> dict:
    """The config a run gives its ingestion step (empty for a catch-up run with defaults)."""
    return run.run_config.get("ops", {}).get(INGEST_STEP, {}).get("config", {})


def configured_ranges(run: dg.DagsterRun) -> list[OffsetRange]:
    """The offset ranges a run's config names (none for a catch-up run)."""
    return [OffsetRange(r["topic"], r["partition"], r["start"], r["end"]) for r in ingest_config(run).get("ranges", [])]


def ranges_in_flight(instance: dg.DagsterInstance, except_group: str) -> list[OffsetRange]:
    """The ranges named by streaming runs queued or running, other than those of run group `except_group`."""
    runs = instance.get_runs(dg.RunsFilter(tags=STREAMING_TAGS, statuses=ACTIVE_STATUSES))
    return [r for run in runs if run_group_id(run) != except_group for r in configured_ranges(run)]


def _sensor_states(instance: dg.DagsterInstance) -> list:
    """The streaming sensor's instigator states that hold data ([] on an instance with no schedule storage, as a run
    executed in process has)."""
    if instance.schedule_storage is None:
        return []
    return [s for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
            if s.instigator_name == SENSOR_NAME and s.instigator_data]


def _last_ticked(states: list):
    return max(states, key=lambda s: s.instigator_data.last_tick_start_timestamp or 0, default=None)


def streaming_cursor(instance: dg.DagsterInstance) -> dict[tuple[str, int], int] | None:
    """The next offset the streaming sensor will plan, per (topic, partition), while a daemon evaluates
    it; None when streaming is off (sensor stopped, or no tick for a minute, or an instance with no
    schedule storage, as a run executed in process has)."""
    newest = _last_ticked([
        s for s in _sensor_states(instance)
        if s.status != InstigatorStatus.STOPPED
        and (s.instigator_data.last_tick_start_timestamp or 0) > time.time() - SENSOR_ALIVE_SECONDS
    ])
    if newest is None:
        return None
    return {partition_of(key): offset for key, offset in parse_cursor(newest.instigator_data.cursor).items()}


def stored_sensor_cursor(instance: dg.DagsterInstance) -> str | None:
    """The streaming sensor's stored cursor, running or not (None when it never ticked with a free run slot, or on an
    instance with no schedule storage): its topic ids are those it last planned against (none before it planned)."""
    newest = _last_ticked([s for s in _sensor_states(instance) if s.instigator_data.cursor])
    return newest.instigator_data.cursor if newest else None


FAILED_STATUSES = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
ROOT_RUN_TAG = "dagster/root_run_id"
# Dagster's retry of a failed run is created within seconds: a run group whose last attempt failed longer
# ago than this, with nothing queued, running or successful, will not be retried.
RETRY_GRACE_SECONDS = 30
FAILURES_LOOKED_AT_SECONDS = 6 * 3600


def failures_horizon(last_looked: float | None = None) -> float:
    """The time after which a micro-batch's failure may still be planned again: FAILURES_LOOKED_AT_SECONDS before
    the sensor last looked for failures (`last_looked`; now if unknown), so a failure just before the daemon
    stopped is still found when it starts again, hours later."""
    now = time.time()
    return min(now, last_looked or now) - FAILURES_LOOKED_AT_SECONDS


def sensor_failures_checked_at(instance: dg.DagsterInstance) -> float | None:
    """When the streaming sensor last looked for failed micro-batches, from its stored cursor (None if unknown)."""
    return parse_failures_checked_at(stored_sensor_cursor(instance))


def runs_failed_for_good(instance: dg.DagsterInstance, grace_seconds: float = RETRY_GRACE_SECONDS,
                         horizon: float | None = None) -> list[dg.DagsterRun]:
    """The last attempt of every streaming run group that failed (or was canceled) past its retries after
    `horizon` (`failures_horizon()` if None): its ranges may be missing from the lake, or merged into raw but not
    into cleaned."""
    now = time.time()
    horizon = failures_horizon() if horizon is None else horizon
    records = instance.get_run_records(
        dg.RunsFilter(job_name=STREAMING_JOB, statuses=FAILED_STATUSES,
                      updated_after=datetime.fromtimestamp(horizon, tz=timezone.utc)),
        limit=200,
    )
    latest: dict[str, dg.RunRecord] = {}
    for record in records:
        group = run_group_id(record.dagster_run)
        if group not in latest or record.update_timestamp > latest[group].update_timestamp:
            latest[group] = record
    # Groups whose retry or re-plan succeeded, deleted since by housekeeping.
    settled = set(instance.get_run_ids(dg.RunsFilter(run_ids=list(latest), tags={SETTLED_TAG: "true"}))) if latest else set()
    failed = []
    for group, record in latest.items():
        if (record.update_timestamp.timestamp() > now - grace_seconds or not configured_ranges(record.dagster_run)
                or group in settled):
            continue
        attempts = instance.get_runs(dg.RunsFilter(tags={ROOT_RUN_TAG: group}))
        if any(run.status in (*ACTIVE_STATUSES, dg.DagsterRunStatus.SUCCESS) for run in attempts):
            continue
        if not instance.get_runs(dg.RunsFilter(tags={REPLANS_TAG: group}), limit=1):  # not re-planned yet
            failed.append(record.dagster_run)
    return failed


def groups_not_settled(instance: dg.DagsterInstance, groups, chunk: int = 500) -> set[str]:
    """Of these run groups (root run ids, as the ingestion log records them), those that may still merge what they
    ingested: a run of the group failed, was canceled or is in flight, and none succeeded, nor did a micro-batch
    that re-planned it. A re-execution, a retry or a re-plan finds their ranges by run id in the ingestion log.

    So is a group housekeeping marked settled (SETTLED_TAG) when it deleted the retry or re-plan that succeeded. A
    streaming micro-batch's failure from before the sensor's look-back (`failures_horizon`, from when the sensor
    last looked) counts as settled too, unless a re-plan in flight stands for it: the sensor re-plans a
    micro-batch within those hours or not at all. Asked per `chunk` groups, and only about groups with such a
    run: a day of micro-batches is a few queries."""
    groups, unsettled = sorted(set(groups)), set()
    horizon = failures_horizon(sensor_failures_checked_at(instance))
    for i in range(0, len(groups), chunk):
        part = groups[i:i + chunk]

        def group_records(statuses, part=part):
            return [*instance.get_run_records(dg.RunsFilter(run_ids=part, statuses=statuses)),
                    *instance.get_run_records(dg.RunsFilter(tags={ROOT_RUN_TAG: part}, statuses=statuses))]

        candidates = sorted({
            run_group_id(record.dagster_run)
            for record in group_records([*FAILED_STATUSES, *ACTIVE_STATUSES])
            if record.dagster_run.status in ACTIVE_STATUSES or record.dagster_run.job_name != STREAMING_JOB
            or record.update_timestamp.timestamp() > horizon
        })
        if not candidates:
            continue
        settled = {run_group_id(record.dagster_run)
                   for record in group_records([dg.DagsterRunStatus.SUCCESS], candidates)}
        settled |= {run.tags[REPLANS_TAG] for run in instance.get_runs(
            dg.RunsFilter(tags={REPLANS_TAG: candidates}, statuses=[dg.DagsterRunStatus.SUCCESS]))}
        settled |= set(instance.get_run_ids(dg.RunsFilter(run_ids=candidates, tags={SETTLED_TAG: "true"})))
        unsettled |= set(candidates) - settled
    return unsettled | (set(groups) & replanned_in_flight(instance))


def replanned_in_flight(instance: dg.DagsterInstance) -> set[str]:
    """The run groups that re-planned micro-batches queued or running stand for (`replanned_groups`): they merge
    what those groups ingested, found by run id, however old the failure (the sensor re-plans one that failed
    hours before, after a daemon outage)."""
    return {group for run in instance.get_runs(dg.RunsFilter(tags=STREAMING_TAGS, statuses=ACTIVE_STATUSES))
            if REPLANS_TAG in run.tags for group in replanned_groups(instance, run)}


def replanned_groups(instance: dg.DagsterInstance, run: dg.DagsterRun, limit: int = 1_000) -> list[str]:
    """The run groups a re-planned micro-batch stands for: the one it re-plans, that one's own if it was a re-plan
    too, and so on back (a re-plan can fail for good in turn, while Spark stays down)."""
    groups, group = [], run.tags.get(REPLANS_TAG)
    while group and group not in groups and len(groups) < limit:
        groups.append(group)
        replanned = instance.get_run_by_id(group)
        group = replanned.tags.get(REPLANS_TAG) if replanned else None
    return groups


def seconds_since_last_heal(instance: dg.DagsterInstance) -> float:
    """Seconds since the newest micro-batch asked to heal gaps was created (infinite if none was)."""
    records = instance.get_run_records(dg.RunsFilter(job_name=STREAMING_JOB, tags={HEALS_TAG: "true"}), limit=1)
    return time.time() - records[0].create_timestamp.timestamp() if records else float("inf")
