"""The code location loads, as `dagster dev` and the daemon load it."""

from __future__ import annotations

import subprocess

from pinterest_dagster.settings import REPO_ROOT


def test_dagster_validates_the_workspace():
    result = subprocess.run(
        [str(REPO_ROOT / ".venv/bin/dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "All code locations passed validation" in result.stderr + result.stdout


def test_every_asset_has_owners_and_a_link_to_its_source():
    from pinterest_dagster.definitions import OWNERS, defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners == OWNERS, key
        [reference] = node.metadata["dagster/code_references"].code_references
        assert (REPO_ROOT / reference.file_path).is_file(), key


def test_the_kafka_topics_are_external_assets_upstream_of_raw():
    import dagster as dg

    from pinterest_dagster.definitions import defs

    graph = defs.resolve_asset_graph()
    for kind in ("pin", "geo", "user"):
        topic = dg.AssetKey(["kafka", kind])
        assert not graph.get(topic).is_materializable
        assert graph.get(dg.AssetKey(["raw", kind])).parent_keys == {topic}
    assert len(graph.get(dg.AssetKey(["raw", "rejects"])).parent_keys) == 3


def test_the_daily_batch_runs_from_the_daemons_start_on_the_configured_cron():
    import dagster as dg

    from pinterest_dagster.definitions import build_definitions
    from pinterest_dagster.settings import Settings

    schedule = build_definitions(Settings.from_env({})).resolve_schedule_def("daily_batch_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == ("0 0 * * *", "UTC", "batch_job")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    other = build_definitions(Settings.from_env({"PINTEREST_BATCH_CRON": "30 2 * * *"}))
    assert other.resolve_schedule_def("daily_batch_schedule").cron_schedule == "30 2 * * *"
