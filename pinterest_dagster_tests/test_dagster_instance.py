"""The Dagster instances of infra/dagster: dagster-postgres.yaml is dagster.yaml with its runs, events
and schedules in PostgreSQL, and the run queue and retries are what docs/configuration.md documents."""

from __future__ import annotations

import re

import dagster as dg
import yaml
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from pinterest_dagster.definitions import defs
from pinterest_dagster.defs.streaming.jobs import streaming_job
from pinterest_dagster.defs.ingest.checks import raw_checks
from pinterest_dagster.lib.pools import LAKE_WRITES
from pinterest_dagster.settings import REPO_ROOT

INSTANCE_DIR = REPO_ROOT / "infra/dagster"


def instance_yaml(name: str) -> dict:
    return yaml.safe_load((INSTANCE_DIR / name).read_text())


def documented_run_settings() -> dict[str, int]:
    """The settings table of docs/configuration.md's "Concurrency: the run queue and retries": setting name -> number."""
    text = (REPO_ROOT / "docs/configuration.md").read_text()
    section = text.split("\n### Concurrency: the run queue and retries\n", 1)[1].split("\n## ", 1)[0]
    return {name: int(value) for name, value in re.findall(r"^\| `([^`]+)` \| (\d+) \|", section, re.MULTILINE)}


def test_the_postgres_instance_is_the_default_one_with_another_storage():
    postgres = instance_yaml("dagster-postgres.yaml")
    assert "postgres" in postgres.pop("storage")
    assert postgres == instance_yaml("dagster.yaml")


def test_the_postgres_connection_comes_only_from_the_environment():
    database = instance_yaml("dagster-postgres.yaml")["storage"]["postgres"]["postgres_db"]
    assert database.pop("scheme") == "postgresql+psycopg2"
    assert database == {
        "hostname": {"env": "DAGSTER_PG_HOST"}, "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USER"}, "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"},
    }


@dg.asset
def one_row() -> int:
    return 1


def test_runs_events_and_schedules_are_stored_in_postgres(postgres_instance):
    assert isinstance(postgres_instance.run_storage, PostgresRunStorage)
    assert isinstance(postgres_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(postgres_instance.schedule_storage, PostgresScheduleStorage)
    result = dg.materialize([one_row], instance=postgres_instance)
    assert postgres_instance.get_run_by_id(result.run_id).is_success
    assert postgres_instance.get_latest_materialization_event(one_row.key) is not None


def test_every_step_that_writes_the_lake_is_in_the_lake_writes_pool_held_for_the_whole_run(postgres_instance):
    assert postgres_instance.get_concurrency_config().pool_config.pool_granularity.value == "run"
    writers = {}
    for assets_def in defs.resolve_asset_graph().assets_defs:
        if assets_def.is_executable and assets_def.keys:
            writers[assets_def.node_def.name] = assets_def.node_def.pool
    assert set(writers.values()) == {LAKE_WRITES}, writers
    # The raw checks write how far they have read (lib/check_state.py).
    assert {check.node_def.name: check.node_def.pool for check in raw_checks} == {
        "raw_completeness": LAKE_WRITES, "raw_schema_drift": LAKE_WRITES}


def test_the_run_queue_and_retries_are_what_the_readme_documents(postgres_instance):
    queue = postgres_instance.get_concurrency_config().run_queue_config
    [streaming_limit] = [
        limit["limit"] for limit in queue.tag_concurrency_limits
        if limit["key"] in streaming_job.tags and streaming_job.tags[limit["key"]] == limit.get("value")
    ]
    assert postgres_instance.run_retries_enabled and postgres_instance.run_monitoring_enabled
    assert documented_run_settings() == {
        "max_concurrent_runs": queue.max_concurrent_runs,
        "pipeline: streaming": streaming_limit,
        LAKE_WRITES: postgres_instance.get_concurrency_config().pool_config.default_pool_limit,
        "dequeue_interval_seconds": postgres_instance.run_coordinator.dequeue_interval_seconds,
        "max_retries": postgres_instance.run_retries_max_retries,
        "poll_interval_seconds": postgres_instance.run_monitoring_poll_interval_seconds,
    }


def test_sensor_and_schedule_ticks_are_deleted_after_a_bounded_number_of_days(postgres_instance):
    """Dagster keeps every tick unless told otherwise: the streaming sensor ticks every few seconds."""
    from dagster._core.definitions.run_request import InstigatorType

    for kind in (InstigatorType.SENSOR, InstigatorType.SCHEDULE):
        retention = postgres_instance.get_tick_retention_settings(kind)
        assert len(retention) == 4 and all(0 < days <= 90 for days in retention.values()), (kind, retention)
    skipped = {status.value: days for status, days in postgres_instance.get_tick_retention_settings(InstigatorType.SENSOR).items()}
    assert skipped["SKIPPED"] == 1  # most of the streaming sensor's ticks
