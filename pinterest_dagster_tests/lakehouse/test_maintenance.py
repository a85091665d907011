"""Table maintenance: compaction and VACUUM beside a micro-batch lose and duplicate nothing, the current
version keeps every file it needs, the ingestion log is coalesced without losing a range, and the
schedule queues low-priority runs (one per raw table by date, one for the other tables), which take turns with
micro-batches. Real broker, in-process runs on a real lake."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from dagster._utils.tags import is_valid_tag_key

from pinterest_dagster.defs.maintenance import jobs
from pinterest_dagster.defs.maintenance.jobs import (
    INGESTION_LOG, MAINTENANCE_PRIORITY, PRIORITY_TAG, RAW_CHECKS_STATE, TABLE_TAG, TABLES, TURN_PRIORITY,
    build_maintenance_schedule,
    maintain_tables, maintained_tag, maintenance_request, maintenance_turn_sensor,
)
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import (
    COALESCED, LOG_SCHEMA, coalesce_log, coalesced_log_rows, lag, log_path, log_time, logged_ranges,
)
from pinterest_dagster.lib.maintenance import table_facts
from pinterest_dagster.lib.offsets import union
from pinterest_dagster.lib.pools import LAKE_WRITES
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.streaming_runs import STREAMING_TAGS
from pinterest_dagster_tests.pipeline import Pipeline, make_pipeline
from pinterest_dagster_tests.services import require_spark_connect
from pinterest_dagster_tests.streaming.test_gaps import completeness
from pinterest_dagster_tests.streaming.test_streaming_run import sensor_run_configs

STATE_TABLES = [t for t in TABLES if not t.startswith(("aggregated/", "_meta/"))]


@pytest.fixture(scope="module")
def pipeline(spark, tmp_path_factory, source_url):
    return make_pipeline(tmp_path_factory, source_url, spark_remote=None)


def maintenance_config(tables=TABLES, retain_hours: float = 0, coalesce_after_hours: float = 0) -> dict:
    return {"ops": {"maintain_tables": {"config": {
        "tables": list(tables), "vacuum_retain_hours": retain_hours, "coalesce_log_after_hours": coalesce_after_hours}}}}


def table_rows(spark, pipeline, tables) -> dict[str, list]:
    return {t: sorted(map(tuple, delta.read_table(spark, pipeline.settings.table_path(*t.split("/"))).collect()))
            for t in tables}


@pytest.fixture(scope="module")
def maintained_beside_a_micro_batch(pipeline, spark):
    """Six micro-batches leave small files in every table; the others run while maintenance_job
    compacts, vacuums and coalesces every table, with no pool between them: the
    micro-batches on the Spark Connect server in a `dagster job execute` process, maintenance in this
    process, two writers that Delta's conflict checks and our retries must keep apart."""
    pipeline.post_emulated(posts=90, seed=21)
    configs, cursor = [], None
    while True:  # every micro-batch of the backlog: a tick plans at most 10
        planned, cursor = sensor_run_configs(pipeline, cursor, max_records=40)
        if not planned:
            break
        configs += planned
    assert len(configs) >= 8
    for config in configs[:6]:
        pipeline.run_job("streaming_job", config)
    before = {t: table_facts(spark, pipeline.settings.table_path(*t.split("/"))) for t in STATE_TABLES}
    log_rows = delta.read_table(spark, pipeline.settings.table_path("_meta", "ingested_ranges")).count()
    errors = []
    on_connect = Pipeline(dataclasses.replace(pipeline.settings, spark_remote=require_spark_connect()), pipeline.defs)

    def micro_batches():
        try:
            for config in configs[6:]:
                on_connect.run_job("streaming_job", config)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(error)

    streaming = threading.Thread(target=micro_batches)
    streaming.start()
    # Delta's retention, as scheduled: a VACUUM of 0 h beside a writer would delete the files it has
    # written and not committed yet (why Delta refuses it unless told otherwise).
    result = pipeline.run_job("maintenance_job", maintenance_config(retain_hours=168))
    streaming.join()
    assert not errors, errors
    assert lag(spark, LakeResource.from_settings(pipeline.settings), KafkaResource.from_settings(pipeline.settings)) == 0
    return before, log_rows, result


def test_maintenance_beside_a_micro_batch_loses_and_duplicates_nothing(maintained_beside_a_micro_batch, pipeline, spark):
    before, _, result = maintained_beside_a_micro_batch
    checks = completeness(pipeline)
    assert all(check.passed for check in checks.values()), {k: c.metadata for k, c in checks.items()}
    # What the micro-batches merged, beside maintenance, is what a rebuild from raw computes.
    merged = table_rows(spark, pipeline, [t for t in STATE_TABLES if t.startswith(("cleaned/", "realtime/"))])
    pipeline.run_rebuild_job()
    rebuilt = table_rows(spark, pipeline, merged)
    assert rebuilt == merged, {t: (sorted(set(map(str, merged[t])) - set(map(str, rebuilt[t])))[:3],
                                   sorted(set(map(str, rebuilt[t])) - set(map(str, merged[t])))[:3])
                               for t in merged if merged[t] != rebuilt[t]}
    # The small files were compacted, and the step says so for each table.
    [output] = [e.step_output_data for e in result.all_events if e.is_successful_output]
    metadata = output.metadata
    for table in ("raw/pin", "cleaned/pin", "_state/poster_pins"):
        assert before[table].files > 3
        # Against the step's own count, taken just before its OPTIMIZE: a micro-batch's MERGE that commits
        # between the count above and the OPTIMIZE rewrites some of those files into fewer.
        assert metadata[f"{table} files_before"].value > 3
        assert metadata[f"{table} files_compacted"].value >= metadata[f"{table} files_before"].value - 1
    observed = [e.asset_observation_data.asset_observation for e in result.all_events if e.is_asset_observation]
    assert {o.asset_key.to_user_string() for o in observed} >= {"raw/pin", "cleaned/pin", "realtime/category_trends"}
    assert all("files_after" in o.metadata and "commits_since_checkpoint" in o.metadata for o in observed)


def test_vacuum_keeps_every_file_the_current_version_needs(maintained_beside_a_micro_batch, pipeline, spark):
    # One table of each way it is written: raw appended by date (partitioned) and not (rejects), cleaned and
    # realtime merged into, the raw checks' state (a small table merged into by every evaluation of the raw checks).
    # The same statements run on every table; all 20 took CI 77 s.
    tables = ["raw/pin", "raw/rejects", "cleaned/pin", "realtime/category_trends", RAW_CHECKS_STATE]
    rows = table_rows(spark, pipeline, tables)
    pipeline.run_job("maintenance_job", maintenance_config(tables))
    assert table_rows(spark, pipeline, tables) == rows
    for table in tables:
        path = pipeline.settings.table_path(*table.split("/"))
        on_disk = [p for p in Path(path).rglob("*.parquet") if "_delta_log" not in p.parts]
        assert len(on_disk) == table_facts(spark, path).files, f"{table}: files no version needs were left"
    # The versions before the compaction lost their files: VACUUM really deleted them.
    with pytest.raises(Exception, match="(?i)file|exist|not found"):
        spark.read.format("delta").option("versionAsOf", 1).load(pipeline.settings.table_path("cleaned", "pin")).collect()


def test_a_table_whose_maintenance_fails_fails_the_run_after_the_others_were_maintained(
        maintained_beside_a_micro_batch, pipeline, monkeypatch):
    """The other tables share a run: one that fails (here cleaned/pin, made to) must not leave them unmaintained."""
    real = jobs.maintain
    tables = ["cleaned/pin", "cleaned/geo", "cleaned/user", "realtime/category_trends"]

    def maintained_failing(broken: set[str]) -> tuple[str, set[str]]:
        """Runs maintenance_job on `tables` with `broken` failing; its failure message and the tables observed."""
        def failing(context, spark, lake, table, path, config):
            if table in broken:
                raise RuntimeError("disk full")
            return real(context, spark, lake, table, path, config)

        monkeypatch.setattr(jobs, "maintain", failing)
        result = pipeline.defs.resolve_job_def("maintenance_job").execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
            run_config=maintenance_config(tables, retain_hours=168))
        assert not result.success
        [failure] = [e.step_failure_data.error for e in result.all_events if e.is_step_failure]
        return failure.message, {e.asset_observation_data.asset_observation.asset_key.to_user_string()
                                 for e in result.all_events if e.is_asset_observation}

    message, observed = maintained_failing({"cleaned/pin"})
    assert "maintenance of cleaned/pin failed;" in message and "disk full" in message, message
    assert observed == set(tables) - {"cleaned/pin"}
    # Two failures in a row (as when the Spark Connect server is down): the rest are not tried.
    message, observed = maintained_failing({"cleaned/pin", "cleaned/geo"})
    assert "maintenance of cleaned/pin, cleaned/geo failed, and cleaned/user, realtime/category_trends not tried" in message, message
    assert observed == set()


def test_a_maintenance_run_that_failed_a_step_is_not_retried_one_whose_process_died_is():
    """The instance retries failed runs (run_retries, max_retries 3). A maintenance run fails its step only after the
    run's other tables were maintained: the next pass queues the run's tables again, not a retry of them all."""
    from dagster._core.events import RunFailureReason
    from dagster._core.execution.retries import auto_reexecution_should_retry_run
    from dagster._core.test_utils import create_run_for_test

    with dg.instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 3}}) as instance:
        def retried(job_name: str, tags: dict, reason: RunFailureReason | None) -> bool:
            run = create_run_for_test(instance, job_name=job_name, status=dg.DagsterRunStatus.FAILURE, tags=tags)
            return auto_reexecution_should_retry_run(instance, run, reason)

        # A scheduled run carries the job's tags and its request's; one launched from the UI or the CLI the job's.
        scheduled = {**jobs.maintenance_job.run_tags, **maintenance_request(["cleaned/pin", "cleaned/geo"], 168, "k").tags}
        for tags in (scheduled, jobs.maintenance_job.run_tags):
            assert not retried("maintenance_job", tags, RunFailureReason.STEP_FAILURE)
            # A process that died: failed by run monitoring with no reason, a killed step process's run exception, a SIGTERM.
            for reason in (None, RunFailureReason.RUN_EXCEPTION, RunFailureReason.UNEXPECTED_TERMINATION):
                assert retried("maintenance_job", tags, reason), reason
        # A micro-batch is retried whatever failed it.
        assert retried("streaming_job", dict(STREAMING_TAGS), RunFailureReason.STEP_FAILURE)


def test_the_ingestion_log_is_coalesced_and_still_covers_every_range(maintained_beside_a_micro_batch, pipeline, spark):
    _, log_rows, result = maintained_beside_a_micro_batch
    path = pipeline.settings.table_path("_meta", "ingested_ranges")
    log = delta.read_table(spark, path).collect()
    # What the coalescing read (the six micro-batches' rows at least) became fewer rows. The table itself may hold
    # more afterwards: the micro-batches that log after the coalescing add theirs.
    [output] = [e.step_output_data for e in result.all_events if e.is_successful_output]
    read, written = (output.metadata[f"{INGESTION_LOG} {name}"].value for name in ("log_rows_before", "log_rows_after"))
    assert written < read and read >= log_rows
    partitions = {(r.topic, r.partition) for r in log}
    # The micro-batches log a prefix of the backlog's ranges: one coalesced row per partition.
    assert sum(r.run_id == COALESCED for r in log) <= len(partitions)
    logged = logged_ranges(spark, LakeResource.from_settings(pipeline.settings))
    assert all(len(union(intervals)) == 1 for intervals in logged.values()), logged


def test_coalescing_merges_contiguous_ranges_keeps_gaps_and_recent_rows():
    t0 = datetime(2026, 12, 1, 12)
    old, young = t0 - timedelta(days=2), t0 + timedelta(minutes=1)
    rows = [
        ("pin", 0, 0, 10, 9, 1, "a", old), ("pin", 0, 10, 20, 10, 0, "b", old),
        ("pin", 0, 10, 20, 10, 0, "b-retry", old + timedelta(seconds=5)),  # the same range logged twice
        ("pin", 0, 25, 30, 5, 0, "c", old),  # after a gap of 5
        ("pin", 1, 0, 4, 4, 0, "d", old), ("pin", 0, 30, 40, 10, 0, "young", young),
    ]
    assert sorted(coalesced_log_rows(rows, older_than=t0)) == sorted([
        ("pin", 0, 0, 20, 19, 1, COALESCED, old + timedelta(seconds=5)), ("pin", 0, 25, 30, 5, 0, COALESCED, old),
        ("pin", 1, 0, 4, 4, 0, COALESCED, old), ("pin", 0, 30, 40, 10, 0, "young", young),
    ])


def test_a_range_logged_while_the_log_is_coalesced_stays_in_it(spark, tmp_path):
    """A micro-batch appends its ranges beside maintenance: one appended after the coalescing read the log
    (here by `keep_groups`, which runs between the read and the write) is still logged afterwards, with its
    run id; the rows read are coalesced. CI's trial of 2026-12-07 lost such a row (the ingestion lag of the
    fixture above was 36): the rewrite overwrote the log with what it had read."""
    lake = LakeResource(root=str(tmp_path))
    old = log_time() - timedelta(days=2)
    path = log_path(lake)
    logged = [("pin", 0, 0, 10, 10, 0, "a", old), ("pin", 0, 10, 20, 9, 1, "b", old), ("geo", 0, 0, 5, 5, None, "c", old)]
    delta.write_table(spark, spark.createDataFrame(logged, LOG_SCHEMA), path, "append", describe=False)
    late = ("pin", 0, 20, 30, 10, 0, "late", old + timedelta(hours=1))  # older than the cutoff too

    def meanwhile(groups: set[str]) -> set[str]:
        assert groups == {"a", "b", "c"}
        delta.write_table(spark, spark.createDataFrame([late], LOG_SCHEMA), path, "append", describe=False)
        return set()

    compaction = coalesce_log(spark, lake, older_than=log_time(), keep_groups=meanwhile)
    assert (compaction.rows_before, compaction.rows_after) == (3, 2)
    assert sorted(map(tuple, delta.read_table(spark, path).collect()), key=str) == sorted([
        ("pin", 0, 0, 20, 19, 1, COALESCED, old), ("geo", 0, 0, 5, 5, 0, COALESCED, old), late], key=str)
    # The next coalescing takes the late row in with the others.
    coalesce_log(spark, lake, older_than=log_time())
    assert sorted(map(tuple, delta.read_table(spark, path).collect()), key=str) == sorted([
        ("pin", 0, 0, 30, 29, 1, COALESCED, late[7]), ("geo", 0, 0, 5, 5, 0, COALESCED, old)], key=str)


def test_coalescing_keeps_the_rows_of_run_groups_that_failed_or_are_running_with_their_run_ids(monkeypatch):
    from dagster._core.test_utils import create_run_for_test

    from pinterest_dagster.lib import streaming_runs
    from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, InstigatorType, SensorInstigatorData

    from pinterest_dagster.lib.microbatch import cursor_text
    from pinterest_dagster.lib.streaming_runs import REPLANS_TAG, ROOT_RUN_TAG, SENSOR_NAME, groups_not_settled
    from pinterest_dagster_tests.services import definitions_repository_origin

    old = datetime(2026, 12, 1, 12) - timedelta(days=2)
    rows = [("pin", 0, 0, 10, 10, 0, "a", old), ("pin", 0, 10, 20, 10, 0, "failed", old), ("pin", 0, 20, 30, 10, 0, "b", old)]
    assert sorted(coalesced_log_rows(rows, older_than=datetime(2026, 12, 1, 12), keep_groups={"failed"})) == sorted([
        ("pin", 0, 0, 10, 10, 0, COALESCED, old), ("pin", 0, 20, 30, 10, 0, COALESCED, old), rows[1],
    ])
    with dg.instance_for_test() as instance:
        def run(status, job="streaming_job", group=None, **tags):  # a retry or re-execution has its group's tag
            return create_run_for_test(instance, job_name=job, status=status, root_run_id=group, parent_run_id=group,
                                       tags={**tags, **({ROOT_RUN_TAG: group} if group else {})}).run_id

        succeeded, failed, canceled, running = (run(s) for s in (
            dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.STARTED))
        retried = run(dg.DagsterRunStatus.FAILURE, job="batch_job")
        run(dg.DagsterRunStatus.SUCCESS, job="batch_job", group=retried)  # its retry succeeded
        replanned = run(dg.DagsterRunStatus.FAILURE)
        run(dg.DagsterRunStatus.SUCCESS, **{REPLANS_TAG: replanned})  # a micro-batch re-planned it and succeeded
        failing_retry = run(dg.DagsterRunStatus.FAILURE)
        run(dg.DagsterRunStatus.FAILURE, group=failing_retry)
        not_asked = run(dg.DagsterRunStatus.FAILURE)
        asked = {succeeded, failed, canceled, running, retried, replanned, failing_retry, "deleted-by-housekeeping"}
        assert groups_not_settled(instance, asked) == {failed, canceled, running, failing_retry}
        assert groups_not_settled(instance, asked, chunk=2) == {failed, canceled, running, failing_retry}
        assert not_asked not in groups_not_settled(instance, asked)
        # Past the sensor's look-back, a micro-batch's failure is settled: it was re-planned then or never will be, and
        # housekeeping deletes its successful retries and re-plans after a day. Another job's failure stays unsettled.
        monkeypatch.setattr(streaming_runs, "FAILURES_LOOKED_AT_SECONDS", -60)
        batch_failed = run(dg.DagsterRunStatus.FAILURE, job="batch_job")
        assert groups_not_settled(instance, asked | {batch_failed}) == {running, batch_failed}
        # Unless a re-plan in flight stands for it, back along its chain (after a daemon outage, the sensor re-plans
        # a failure of hours before): that re-plan merges what those groups ingested, found by run id.
        chained = run(dg.DagsterRunStatus.FAILURE, pipeline="streaming", **{REPLANS_TAG: failed})  # failed in turn
        run(dg.DagsterRunStatus.STARTED, pipeline="streaming", **{REPLANS_TAG: chained})
        assert groups_not_settled(instance, asked | {chained}) == {running, failed, chained}
        # The look-back counts from when the sensor last looked for failures (its stored cursor): after a daemon
        # outage of an hour, failures from before it are not settled yet.
        an_hour_ago = datetime.now(timezone.utc).timestamp() - 3600
        instance.add_instigator_state(InstigatorState(
            definitions_repository_origin().get_instigator_origin(SENSOR_NAME), InstigatorType.SENSOR,
            InstigatorStatus.RUNNING, SensorInstigatorData(cursor=cursor_text({}, {}, an_hour_ago),
                                                           last_tick_start_timestamp=an_hour_ago)))
        assert groups_not_settled(instance, asked) == {failed, canceled, running, failing_retry}


def test_the_schedule_queues_low_priority_runs_one_per_raw_table_one_for_the_others_and_skips_busy_tables():
    from dagster._core.test_utils import create_run_for_test

    schedule = build_maintenance_schedule("*/5 * * * *", vacuum_retain_hours=24)
    assert maintain_tables.pool == LAKE_WRITES
    with dg.instance_for_test() as instance:
        # Still in flight: raw/pin's run, and a run of two of the others.
        for tables in (["raw/pin"], ["cleaned/pin", INGESTION_LOG]):
            create_run_for_test(instance, job_name="maintenance_job", status=dg.DagsterRunStatus.STARTED,
                                tags=maintenance_request(tables, 24, "earlier").tags)
        requests = schedule.evaluate_tick(dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 12, 1, 12, 5))).run_requests
    configs = [r.run_config["ops"]["maintain_tables"]["config"] for r in requests]
    others = [t for t in TABLES if t not in ("raw/pin", "raw/geo", "raw/user", "cleaned/pin", INGESTION_LOG)]
    assert [c["tables"] for c in configs] == [["raw/geo"], ["raw/user"], others]
    assert all(c["vacuum_retain_hours"] == 24 for c in configs)
    for request, config in zip(requests, configs):
        assert request.tags[TABLE_TAG] == ",".join(config["tables"])
        assert request.tags[PRIORITY_TAG] == MAINTENANCE_PRIORITY and int(MAINTENANCE_PRIORITY) < 0
        assert all(request.tags[maintained_tag(t)] == "true" for t in config["tables"])
    # Dagster only warns about a tag key it does not accept (and the tests ignore deprecation warnings).
    assert all(is_valid_tag_key(maintained_tag(t)) for t in TABLES)


def test_the_schedule_leaves_out_a_table_that_did_not_change_since_its_last_maintenance():
    """An aggregated table changes once a day: a pass maintains it after a materialization, not before, and
    again once its last maintenance is older than the vacuum retention. The ingestion log, which is no asset,
    is maintained every pass."""
    from dagster._core.test_utils import create_run_for_test

    retain_hours = 24
    schedule = build_maintenance_schedule("*/5 * * * *", vacuum_retain_hours=retain_hours)
    table, key = "aggregated/top_category_by_country", dg.AssetKey(["aggregated", "top_category_by_country"])
    aggregated = {t for t in TABLES if t.startswith("aggregated/")}

    def queued(instance, at: datetime, by=schedule) -> set[str]:
        requests = by.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=at))
        return {t for r in requests.run_requests for t in r.tags[TABLE_TAG].split(",")}

    def maintained(instance, tables, status=dg.DagsterRunStatus.SUCCESS) -> None:
        create_run_for_test(instance, job_name="maintenance_job", tags=maintenance_request(list(tables), 24, "k").tags,
                            status=status)

    now = datetime.now()
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(key))
        assert table in aggregated and queued(instance, now) == set(TABLES)  # never maintained: every table
        maintained(instance, TABLES)
        # No asset was materialized since: only the tables that are no assets (the ingestion log, the states).
        assert queued(instance, now) == {t for t in TABLES if t.split("/")[0] not in ("raw", "cleaned", "realtime")} - aggregated
        assert INGESTION_LOG in queued(instance, now)
        instance.report_runless_asset_event(dg.AssetMaterialization(key))  # the daily batch wrote it again
        assert queued(instance, now) & aggregated == {table}
        maintained(instance, [table])
        assert table not in queued(instance, now)
        # Unchanged, but maintained longer ago than the retention: VACUUM may have files to delete.
        assert table in queued(instance, now + timedelta(hours=retain_hours + 1))
        # A failed maintenance run does not count as maintained.
        instance.report_runless_asset_event(dg.AssetMaterialization(key))
        maintained(instance, [table], dg.DagsterRunStatus.FAILURE)
        assert table in queued(instance, now)
        # An unchanged raw table is maintained again on the next day (UTC): the day closed since may be crowded.
        weekly = build_maintenance_schedule("*/5 * * * *", vacuum_retain_hours=168)
        by_date = {"raw/pin", "raw/geo", "raw/user"}
        next_day = datetime.combine(datetime.now(timezone.utc).date() + timedelta(days=1), time(0, 30, tzinfo=timezone.utc))
        for at, expected in ((datetime.now(timezone.utc), set()), (next_day, by_date)):
            assert queued(instance, at, weekly) & (by_date | {"raw/rejects"}) == expected


def test_queued_maintenance_runs_take_turns_one_at_a_time_with_the_micro_batches_raw_tables_first(instance):
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.test_utils import create_run_for_test

    # Dagster queues only runs that say where their code is.
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("pinterest_dagster"), "__repository__"),
                             "maintenance_job")

    def turn(instance) -> str | None:
        """Evaluates the sensor; the table of the queued run that has the turn afterwards, if any."""
        maintenance_turn_sensor(dg.build_sensor_context(instance=instance))
        raised = [r.tags[TABLE_TAG] for r in instance.get_runs(dg.RunsFilter(job_name="maintenance_job"))
                  if r.tags.get(PRIORITY_TAG) == TURN_PRIORITY and r.status == dg.DagsterRunStatus.QUEUED]
        assert len(raised) <= 1, raised
        return raised[0] if raised else None

    def moves(instance, run, event_type: DagsterEventType) -> None:  # what the queue and the run would report
        instance.handle_run_event(run.run_id, DagsterEvent(event_type.value, job_name=run.job_name))

    def maintained(instance, run) -> None:
        """The run is maintained. No maintenance run has the turn until a micro-batch starts: not while one
        waits, nor for runs that never started, which PostgreSQL sorts first by start time (six micro-batches and a
        maintenance run of a table other than raw's, cancelled while queued)."""
        moves(instance, run, DagsterEventType.RUN_START)
        moves(instance, run, DagsterEventType.RUN_SUCCESS)
        for job_name, tags in [("streaming_job", STREAMING_TAGS)] * 6 + [("maintenance_job", {TABLE_TAG: "cleaned/user"})]:
            create_run_for_test(instance, job_name=job_name, tags=tags, status=dg.DagsterRunStatus.CANCELED)
        micro_batch = create_run_for_test(instance, job_name="streaming_job", tags=STREAMING_TAGS)
        assert turn(instance) is None
        moves(instance, micro_batch, DagsterEventType.RUN_START)

    assert int(TURN_PRIORITY) > 0 > int(MAINTENANCE_PRIORITY)  # a micro-batch's priority is 0
    assert turn(instance) is None  # nothing waits
    queued = [create_run_for_test(instance, job_name="maintenance_job", remote_job_origin=origin,
                                  tags={TABLE_TAG: table, PRIORITY_TAG: MAINTENANCE_PRIORITY})
              for table in ("cleaned/pin", "raw/pin", "raw/geo", "cleaned/geo")]
    for run in queued:
        moves(instance, run, DagsterEventType.RUN_ENQUEUED)
    assert turn(instance) == "raw/pin"  # the oldest raw table's, before the older cleaned/pin
    assert turn(instance) == "raw/pin"  # still its turn, and no other run's
    moves(instance, queued[1], DagsterEventType.RUN_START)
    assert turn(instance) is None  # one in flight: the others wait below the micro-batches
    moves(instance, queued[1], DagsterEventType.RUN_SUCCESS)
    assert turn(instance) is None  # no micro-batch started since: the one waiting goes first
    moves(instance, create_run_for_test(instance, job_name="streaming_job", tags=STREAMING_TAGS),
          DagsterEventType.RUN_START)
    # After a raw turn the oldest, raw or not: cleaned/pin, then a raw table again, then the oldest.
    for table, run in (("cleaned/pin", queued[0]), ("raw/geo", queued[2]), ("cleaned/geo", queued[3])):
        assert turn(instance) == table
        maintained(instance, run)
    assert turn(instance) is None  # nothing waits
    # A pass as the schedule queues it: raw/pin, raw/geo, then the other tables in one run. After raw/pin's
    # turn the oldest is raw/geo's run: two raw turns in a row, then the others'.
    queued = [create_run_for_test(instance, job_name="maintenance_job", remote_job_origin=origin,
                                  tags=maintenance_request(tables, 168, "k").tags)
              for tables in (["raw/pin"], ["raw/geo"], ["cleaned/pin", INGESTION_LOG])]
    for run in queued:
        moves(instance, run, DagsterEventType.RUN_ENQUEUED)
    for table, run in zip(("raw/pin", "raw/geo", f"cleaned/pin,{INGESTION_LOG}"), queued):
        assert turn(instance) == table
        maintained(instance, run)
    assert turn(instance) is None


def parquet_codecs(spark, path: str) -> set[str]:
    import pyarrow.parquet as pq

    return {pq.ParquetFile(f.removeprefix("file://")).metadata.row_group(0).column(0).compression
            for f in delta.read_table(spark, path).inputFiles()}


def test_a_crowded_closed_day_is_compacted_again_one_partition_per_pass_and_today_is_not(spark, tmp_path, monkeypatch):
    """Frequent passes leave a busy day with many files at or over the routine threshold (16 MB): once the day
    is closed, its most crowded partition is compacted again with Delta's 1 GB threshold, one per pass.
    Thresholds scaled down here: every file counts as compacted already (1 byte), and a closed partition is
    crowded from 3 files on."""
    import datetime as dt

    from pinterest_dagster.lib import maintenance
    from pinterest_dagster.lib.ingestion import RAW_COMPRESSION, RAW_LAYOUT

    monkeypatch.setattr(maintenance, "COMPACTED_FILE_BYTES", 1)
    monkeypatch.setattr(maintenance, "CLOSED_DAY_MAX_FILES", 2)
    path = str(tmp_path / "raw")
    # Kafka partition 0 of a closed day gets 4 files, partition 1 of it 3, and today's partition 0 gets 4.
    for partition, day, files in ((0, "2026-11-30", 4), (1, "2026-11-30", 3), (0, "2026-12-01", 4)):
        for batch in range(files):
            rows = spark.range(batch * 10, batch * 10 + 10).selectExpr(
                "'pin' AS _topic", f"{partition} AS _partition", "id AS _offset",
                f"TIMESTAMP'{day} 12:00:00' AS _kafka_timestamp", f"DATE'{day}' AS _kafka_date",
                f"{partition} AS _kafka_partition")
            delta.write_table(spark, rows.coalesce(1), path, "append", describe=False, **RAW_LAYOUT)

    def files_per_partition() -> dict[tuple[str, str], int]:
        """Data files per (Kafka date, Kafka partition)."""
        counts = maintenance.files_per_partition(delta.read_table(spark, path).inputFiles())
        return {tuple(part.split("=")[1] for part in directory.split("/")): n for directory, n in counts.items()}

    def compact():
        return maintenance.compact(spark, path, RAW_COMPRESSION, closed_before=dt.date(2026, 12, 1))

    before = sorted(map(tuple, delta.read_table(spark, path).collect()))
    assert files_per_partition() == {("2026-11-30", "0"): 4, ("2026-11-30", "1"): 3, ("2026-12-01", "0"): 4}
    assert maintenance.compact(spark, path, RAW_COMPRESSION).files_removed == 0  # nothing under the routine threshold
    first = compact()  # the most crowded closed partition
    assert (first.files_removed, first.files_added) == (4, 1)
    assert files_per_partition() == {("2026-11-30", "0"): 1, ("2026-11-30", "1"): 3, ("2026-12-01", "0"): 4}
    assert compact().files_removed == 3  # the next one, on the next pass
    assert files_per_partition() == {("2026-11-30", "0"): 1, ("2026-11-30", "1"): 1, ("2026-12-01", "0"): 4}
    assert compact().files_removed == 0  # nothing crowded is left closed; today is not touched
    assert sorted(map(tuple, delta.read_table(spark, path).collect())) == before
    assert parquet_codecs(spark, path) == {"ZSTD"}


def test_compacting_raw_writes_zstd_files_like_raws_own(spark, tmp_path):
    """Delta's OPTIMIZE writes with the session's codec (snappy by default), not with the codec of the files
    it replaces: maintenance tells it raw's, and the session's default is back afterwards."""
    from pinterest_dagster.lib.ingestion import RAW_COMPRESSION, RAW_LAYOUT
    from pinterest_dagster.lib.maintenance import compact

    path = str(tmp_path / "raw")
    for batch in range(3):
        rows = spark.range(batch * 10, batch * 10 + 10).selectExpr(
            "'pin' AS _topic", "0 AS _partition", "id AS _offset", "TIMESTAMP'2026-12-01 12:00:00' AS _kafka_timestamp",
            "DATE'2026-12-01' AS _kafka_date", "0 AS _kafka_partition")
        delta.write_table(spark, rows.repartition(2), path, "append", describe=False, **RAW_LAYOUT)
    assert parquet_codecs(spark, path) == {"ZSTD"} and table_facts(spark, path).files == 6
    assert compact(spark, path, RAW_COMPRESSION).files_removed == 6
    assert parquet_codecs(spark, path) == {"ZSTD"} and table_facts(spark, path).files == 1
    assert delta.read_table(spark, path).count() == 30
    assert spark.conf.get(delta.PARQUET_CODEC, None) != RAW_COMPRESSION  # the session's default is back
    # Without the codec, the same compaction would have turned raw into snappy.
    other = str(tmp_path / "other")
    spark.range(10).repartition(3).write.format("delta").option("compression", "zstd").save(other)
    compact(spark, other)
    assert parquet_codecs(spark, other) == {"SNAPPY"}
