"""The Dagster UI in a real browser: `dagster dev` on the workspace, opened in headless Chromium.

What a person sees: the asset graph with every group, the running sensor, the asset checks, and a
materialisation launched with a click that ends in Success. Deselect with `-m "not browser"`.
"""

from __future__ import annotations

import os
import re

import pytest

from pinterest_dagster.definitions import build_definitions
from pinterest_dagster.lib.kafka import ensure_topics
from pinterest_dagster_tests.services import isolated_settings, require_kafka, require_spark_connect
from pinterest_dagster_tests.ui.browser import (
    GROUPS, DagsterUI, browser_missing, chromium, dagster_dev, dagster_dev_env, run_status,
)

pytestmark = [pytest.mark.browser, pytest.mark.kafka, pytest.mark.spark]

RUN_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    """Topics of the module's own (created, left empty) and a temporary lake."""
    settings = isolated_settings(lake_root=str(tmp_path_factory.mktemp("lake")), spark_remote=require_spark_connect())
    require_kafka(settings)
    ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
def webserver(settings, tmp_path_factory):
    reason = browser_missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the browser tests")
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("dagster_home")
    env = dagster_dev_env(
        home, PINTEREST_TOPIC_PREFIX=settings.topic_prefix, PINTEREST_LAKE_ROOT=settings.lake_root,
        SPARK_REMOTE=settings.spark_remote,
    )
    with dagster_dev(env, home / "dagster_dev.log") as url:
        yield url


@pytest.fixture(scope="module")
def driver(webserver):
    with chromium() as driver:
        yield driver


@pytest.fixture
def ui(driver, webserver, tmp_path) -> DagsterUI:
    """The UI; `tmp_path` is where a failed test leaves the page (conftest.py)."""
    return DagsterUI(driver, webserver)


def expected_checks(settings) -> dict[str, set[str]]:
    """Asset path (`cleaned/pin`) -> names of its checks, from the code location's definitions."""
    checks: dict[str, set[str]] = {}
    for checks_def in build_definitions(settings).asset_checks:
        for key in checks_def.check_keys:
            checks.setdefault(key.asset_key.to_user_string(), set()).add(key.name)
    return checks


def sensor_switch(ui: DagsterUI):
    """The on/off switch of the sensor's row: its last checkbox (the first one selects the row)."""
    row = ui.wait_for_text("kafka_microbatch_sensor").find_element("xpath", "./ancestor::div[@data-index][1]")
    return row.find_elements("css selector", "input[type=checkbox]")[-1]


def test_the_asset_graph_shows_every_group(ui):
    ui.open("/asset-groups")
    ui.wait_for_text("Global asset lineage")
    ui.wait(lambda: ui.graph_group_names() == set(GROUPS), f"the groups {GROUPS} in the graph")


def test_the_automation_page_shows_the_running_sensor(ui):
    ui.open("/automation")
    # The switch is drawn before the sensor's state has loaded: wait for it to turn on.
    ui.wait(lambda: sensor_switch(ui).is_selected(), "kafka_microbatch_sensor to show as running (the default)")


def test_every_asset_check_is_shown_on_its_asset(ui, settings):
    checks = expected_checks(settings)
    assert len(checks) == 6 + 2 + 9, checks  # raw and cleaned pin/geo/user, the realtime and the aggregated tables
    for asset, names in checks.items():
        ui.open(f"/assets/{asset}?view=checks")
        ui.wait_for_text(f"Checks ({len(names)})")
        for name in names:  # a long name is shown shortened, with the whole name as its title
            ui.wait(lambda: ui.driver.find_elements("css selector", f"[title={name}]"), f"the check {name}")


def test_materializing_the_raw_group_from_the_ui_succeeds(ui, webserver):
    """Materialize on the raw group: ingestion of the (empty) topics and the three raw checks. A run of
    the asset job starts a process per step, so on a busy 2-core machine it takes a minute or two."""
    ui.open("/asset-groups")
    group = ui.wait(lambda: ui.driver.find_element("css selector", "[title=raw]"), "the raw group in the sidebar")
    ui.actions().context_click(group).perform()
    ui.click("Materialize assets (4)")
    # Leaving the page before the launch request returns would cancel it: wait for the run's link.
    [run_id] = ui.wait(lambda: [m.group(1) for e in ui.driver.find_elements("css selector", "a[href*='/runs/']")
                                if (m := re.search(r"/runs/([0-9a-f-]{36})", e.get_attribute("href") or ""))][:1],
                       "a link to the launched run")
    # That run, not any: the daemon of `dagster dev` launches runs of its own (Dagster's freshness checks).
    ui.open(f"/runs/{run_id}")
    status = ui.wait(lambda: (s := run_status(webserver, run_id)) in ("SUCCESS", "FAILURE", "CANCELED") and s,
                     "the run to finish", timeout_s=RUN_TIMEOUT_S)
    assert status == "SUCCESS"
    ui.wait_for_text("Success")  # and the run's page says so
