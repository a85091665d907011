"""housekeeping_job deletes old successful micro-batch, freshness check, maintenance and housekeeping runs, with the
step logs and asset check executions they recorded, and old successful or skipped sensor ticks; it keeps failed
runs and ticks and other jobs' runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, InstigatorType, TickData, TickStatus
from dagster._core.storage.compute_log_manager import ComputeIOType
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.test_utils import create_run_for_test
from dagster._utils.error import SerializableErrorInfo

from pinterest_dagster.definitions import build_definitions, defs
from pinterest_dagster.defs.housekeeping import jobs as housekeeping
from pinterest_dagster.defs.housekeeping.jobs import SENSOR_NAME_TAG
from pinterest_dagster.lib.streaming_runs import FRESHNESS_SENSOR, STREAMING_TAGS
from pinterest_dagster.settings import Settings
from pinterest_dagster_tests.services import definitions_repository_origin


def runs(instance) -> dict[str, str]:
    return {run.run_id: f"{run.job_name}:{run.status.value}" for run in instance.get_runs()
            if run.job_name != "housekeeping_job"}


def clean(instance, hours: float, count: str = "runs_deleted") -> int:
    config = {"ops": {"delete_old_streaming_runs": {"config": {"keep_successful_streaming_runs_hours": hours}}}}
    # With the code location's resources, as the schedule runs it.
    result = defs.resolve_job_def("housekeeping_job").execute_in_process(instance=instance, run_config=config)
    [output] = [e.step_output_data for e in result.all_events if e.is_successful_output]
    return output.metadata[count].value


def step_logs(instance, run_id: str) -> list:
    """The log keys of the step logs a run captured (storage/<run id>/compute_logs/ on a local instance)."""
    try:
        return instance.compute_log_manager.get_log_keys_for_log_key_prefix([run_id, "compute_logs"], ComputeIOType.STDERR)
    except FileNotFoundError:
        return []


def test_old_successful_streaming_runs_go_and_failed_and_batch_runs_stay():
    with dg.instance_for_test() as instance:
        for status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
                       dg.DagsterRunStatus.CANCELED):
            create_run_for_test(instance, job_name="streaming_job", tags=STREAMING_TAGS, status=status)
        create_run_for_test(instance, job_name="batch_job", status=dg.DagsterRunStatus.SUCCESS)
        create_run_for_test(instance, job_name="rebuild_job", status=dg.DagsterRunStatus.SUCCESS)
        for status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE):
            create_run_for_test(instance, job_name="maintenance_job", status=status)
        for status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE):  # freshness check runs
            create_run_for_test(instance, job_name="__ASSET_JOB", tags={SENSOR_NAME_TAG: FRESHNESS_SENSOR},
                                status=status)
        before = runs(instance)
        assert clean(instance, hours=1) == 0 and runs(instance) == before  # all younger than an hour
        # Two micro-batches, a freshness check run, a maintenance run and the first clean-up's own run.
        assert clean(instance, hours=0) == 5
        assert sorted(runs(instance).values()) == ["__ASSET_JOB:FAILURE", "batch_job:SUCCESS", "maintenance_job:FAILURE",
                                                   "rebuild_job:SUCCESS", "streaming_job:CANCELED", "streaming_job:FAILURE"]
        deleted = set(before) - set(runs(instance))
        run_databases = Path(instance.event_log_storage.path_for_shard("x")).parent  # history/runs/<run id>.db
        assert {p.stem for p in run_databases.glob("*.db")} & deleted == set()  # emptied and removed
        assert all(instance.get_run_by_id(run_id) is None and not instance.all_logs(run_id) for run_id in deleted)


def test_a_deleted_retry_or_re_plan_leaves_its_failed_group_settled():
    """The sensor may look for failures further back than housekeeping keeps successful runs (after a daemon
    outage): a failure whose retry or re-plan succeeded and went must not look failed for good."""
    from pinterest_dagster.lib.microbatch import run_config
    from pinterest_dagster.lib.offsets import OffsetRange
    from pinterest_dagster.lib.streaming_runs import REPLANS_TAG, ROOT_RUN_TAG, SETTLED_TAG, groups_not_settled, runs_failed_for_good

    with dg.instance_for_test() as instance:
        def failed(offset: int) -> str:
            return create_run_for_test(instance, job_name="streaming_job", status=dg.DagsterRunStatus.FAILURE, tags=STREAMING_TAGS,
                                       run_config=run_config([OffsetRange("t.pin", 0, offset, offset + 10)])).run_id

        retried, replanned, for_good = failed(0), failed(10), failed(20)
        create_run_for_test(instance, job_name="streaming_job", status=dg.DagsterRunStatus.SUCCESS, root_run_id=retried,
                            parent_run_id=retried, tags={**STREAMING_TAGS, ROOT_RUN_TAG: retried})
        create_run_for_test(instance, job_name="streaming_job", status=dg.DagsterRunStatus.SUCCESS,
                            tags={**STREAMING_TAGS, REPLANS_TAG: replanned})
        assert [run.run_id for run in runs_failed_for_good(instance, grace_seconds=0)] == [for_good]
        assert clean(instance, hours=0) == 2
        assert sorted(runs(instance)) == sorted([retried, replanned, for_good])
        assert {run_id: instance.get_run_by_id(run_id).tags.get(SETTLED_TAG) for run_id in runs(instance)} == {
            retried: "true", replanned: "true", for_good: None}
        assert [run.run_id for run in runs_failed_for_good(instance, grace_seconds=0)] == [for_good]
        assert groups_not_settled(instance, [retried, replanned, for_good]) == {for_good}


def test_the_schedule_runs_on_the_configured_cron_with_the_configured_age():
    assert defs.resolve_schedule_def("housekeeping_schedule").cron_schedule == "17 * * * *"  # the defaults
    settings = Settings.from_env({"PINTEREST_HOUSEKEEPING_CRON": "*/5 * * * *", "PINTEREST_KEEP_SUCCESSFUL_RUNS_HOURS": "0.5"})
    schedule = build_definitions(settings).resolve_schedule_def("housekeeping_schedule")
    [request] = schedule.evaluate_tick(dg.build_schedule_context()).run_requests
    assert schedule.cron_schedule == "*/5 * * * *"
    assert request.run_config["ops"]["delete_old_streaming_runs"]["config"] == {"keep_successful_streaming_runs_hours": 0.5}


@dg.asset
def table():
    return 1


@dg.asset_check(asset=table)
def fresh():
    return dg.AssetCheckResult(passed=True)


def check_executions(instance) -> list[str]:
    key = dg.AssetCheckKey(dg.AssetKey("table"), "fresh")
    return sorted(record.run_id for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=100))


def test_the_check_executions_of_deleted_runs_go_but_each_checks_latest_stays(instance):
    """delete_run keeps the asset check executions a run recorded, as the freshness checks' runs do every minute."""
    tags = {SENSOR_NAME_TAG: FRESHNESS_SENSOR}
    checked = [dg.materialize([table, fresh], instance=instance, tags=tags).run_id for _ in range(3)]
    failed = create_run_for_test(instance, job_name="__ASSET_JOB", tags=tags, status=dg.DagsterRunStatus.FAILURE)
    assert check_executions(instance) == sorted(checked)
    assert all(step_logs(instance, run_id) for run_id in checked)
    assert clean(instance, hours=0) == 3
    assert check_executions(instance) == [checked[-1]]  # the latest: the UI still shows the check's state
    assert not any(step_logs(instance, run_id) for run_id in checked)  # delete_run leaves them: housekeeping does not
    assert instance.get_run_by_id(failed.run_id) is not None
    newer = dg.materialize([table, fresh], instance=instance, tags=tags, raise_on_error=True).run_id
    with instance.event_log_storage.index_connection() as conn:  # what the clean-up's own query leaves
        assert conn.execute(sa.select(sa.func.count()).select_from(AssetCheckExecutionsTable)).scalar() == 2
    assert clean(instance, hours=0) == 2  # the newer check run and the first clean-up's run
    assert check_executions(instance) == [newer]


def test_old_successful_and_skipped_sensor_ticks_go_with_their_logs_and_failed_ones_stay(instance, monkeypatch):
    """The streaming sensor ticks every few seconds; the instance's own tick retention counts whole days."""
    monkeypatch.setattr(housekeeping, "DELETE_CHUNK", 1)  # a tick at a time: the chunks of a first clean-up
    repository = definitions_repository_origin()
    state = InstigatorState(repository.get_instigator_origin("a_sensor"), InstigatorType.SENSOR,
                            InstigatorStatus.DECLARED_IN_CODE)
    instance.add_instigator_state(state)

    def tick(status: TickStatus, hours_ago: float) -> tuple[int, list[str]]:
        log_key = ["__repository__", "a_sensor", f"{status.value}-{hours_ago}"]
        with instance.compute_log_manager.capture_logs(log_key):
            print("what the tick logged", file=sys.stderr)
        created = instance.create_tick(TickData(
            state.instigator_origin_id, "a_sensor", InstigatorType.SENSOR, status, time.time() - hours_ago * 3600,
            run_ids=[], selector_id=state.selector_id, log_key=log_key,
            error=SerializableErrorInfo("the sensor raised", [], "Exception") if status == TickStatus.FAILURE else None))
        return created.tick_id, log_key

    old = [tick(TickStatus.SUCCESS, 2), tick(TickStatus.SKIPPED, 2)]
    kept = [tick(TickStatus.FAILURE, 2), tick(TickStatus.SUCCESS, 0.5), tick(TickStatus.SKIPPED, 0.5)]
    assert all(instance.compute_log_manager.is_capture_complete(log_key) for _, log_key in old + kept)
    assert clean(instance, hours=1, count="sensor_ticks_deleted") == 2
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id)
    assert sorted(t.tick_id for t in ticks) == sorted(tick_id for tick_id, _ in kept)
    assert not any(instance.compute_log_manager.is_capture_complete(log_key) for _, log_key in old)
    assert all(instance.compute_log_manager.is_capture_complete(log_key) for _, log_key in kept)
