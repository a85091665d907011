"""The streamed tables' freshness: a policy on each, and checks that fail once no merge came within the window."""

from __future__ import annotations

import time

import dagster as dg

from pinterest_dagster.definitions import defs
from pinterest_dagster.defs.merge.checks import STREAMED_KEYS, build_freshness_checks
from pinterest_dagster.lib.streaming_runs import FRESHNESS_SENSOR


def check_results(minutes: float, instance) -> dict[str, bool]:
    checks, _ = build_freshness_checks(minutes)
    job = dg.define_asset_job("freshness", selection=dg.AssetSelection.checks(*checks))
    definitions = dg.Definitions(assets=[dg.AssetSpec(key) for key in STREAMED_KEYS], asset_checks=checks, jobs=[job])
    result = definitions.resolve_job_def("freshness").execute_in_process(instance=instance)
    return {"/".join(e.asset_key.path): e.passed for e in result.get_asset_check_evaluations()}


def test_cleaned_pin_and_the_realtime_tables_fail_their_freshness_check_once_no_merge_came_within_the_window():
    with dg.instance_for_test() as instance:
        assert set(check_results(15, instance).values()) == {False}  # never merged
        for key in STREAMED_KEYS:
            instance.report_runless_asset_event(dg.AssetMaterialization(key))
        assert check_results(15, instance) == {"/".join(key.path): True for key in STREAMED_KEYS}
        time.sleep(1.0)
        assert set(check_results(0.01, instance).values()) == {False}  # a window of 0.6 s has passed


def test_the_code_location_carries_the_policies_checks_and_their_sensor():
    graph = defs.resolve_asset_graph()
    policies = {key: graph.get(key).freshness_policy for key in graph.get_all_asset_keys()}
    assert {key for key, policy in policies.items() if policy} == set(STREAMED_KEYS)
    assert policies[STREAMED_KEYS[0]].fail_window.to_timedelta().total_seconds() == 15 * 60
    checks = {key.asset_key for key in graph.asset_check_keys if "freshness" in key.name}
    assert checks == set(STREAMED_KEYS)
    sensor = defs.resolve_sensor_def(FRESHNESS_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
