"""`make screenshot`: the README's pictures of the UI after `make demo`, taken in headless Chromium.

Usage: python -m pinterest_dagster_tests.ui.screenshot [docs/images]

Shows the instance `make demo` filled (DAGSTER_HOME, .local/dagster by default) with the Dagster webserver
alone (no daemon: taking the pictures launches no run) and saves:
  asset-lineage.png  every group expanded, top to bottom: materialized assets green, Kafka topics dashed
  asset-plots.png    the asset page of kafka/pin, its metadata as plots: end offset and lag (events,
                     seconds) as each micro-batch observed them
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
from selenium.webdriver.common.keys import Keys

from pinterest_dagster.settings import REPO_ROOT
from pinterest_dagster_tests.ui.browser import GROUPS, DagsterUI, chromium, dagster_dev

DEFAULT_DIRECTORY = REPO_ROOT / "docs/images"
PLOTTED = ("end_offset", "lag_events", "lag_seconds")


def require_demo_instance() -> str:
    """The DAGSTER_HOME to picture; refuses one in which an asset of the code location was never materialized."""
    home = os.environ.get("DAGSTER_HOME")
    if not home or not Path(home, "dagster.yaml").exists():
        raise SystemExit("make screenshot shows the Dagster instance make demo filled: set DAGSTER_HOME "
                         "(the Makefile sets .local/dagster) and run make demo first")
    from pinterest_dagster.definitions import defs

    keys = [node.key for node in defs.resolve_asset_graph().asset_nodes if node.is_materializable]
    with dg.DagsterInstance.from_config(home) as instance:
        never = [key.to_user_string() for key in keys if instance.get_latest_materialization_event(key) is None]
    if never:
        raise SystemExit(f"never materialized in the instance at {home}: {', '.join(never)}; run make demo first")
    return home


def save_pictures(directory: Path) -> list[Path]:
    home = require_demo_instance()
    directory.mkdir(parents=True, exist_ok=True)
    lineage, plots = directory / "asset-lineage.png", directory / "asset-plots.png"
    with tempfile.TemporaryDirectory() as tmp, dagster_dev({**os.environ, "DAGSTER_HOME": home},
                                                           Path(tmp) / "webserver.log", daemon=False) as url:
        # Top to bottom, the expanded graph fits a wide picture (left to right, the nine aggregated tables
        # make it taller than any screen).
        with chromium(viewport=(1800, 900), scale=0.6) as driver:
            ui = DagsterUI(driver, url, timeout_s=60)
            driver.execute_script("window.localStorage.setItem('asset-graph-direction', '\"vertical\"')")
            ui.open("/asset-groups")
            ui.wait(lambda: ui.graph_group_names() == set(GROUPS), f"the groups {GROUPS} in the graph")
            # The graph's own shortcut (⌥E) expands every group.
            ui.actions().key_down(Keys.ALT).send_keys("e").key_up(Keys.ALT).perform()
            for name in ("rejects", "poster_popularity", "category_trends"):
                ui.wait_for_text(name)
            time.sleep(2)  # the graph zooms to fit once laid out
            driver.save_screenshot(str(lineage))
        with chromium(viewport=(1400, 900)) as driver:
            ui = DagsterUI(driver, url, timeout_s=60)
            ui.open("/assets/kafka/pin")
            ui.click("Plots")
            for name in PLOTTED:
                ui.wait_for_text(name)
            driver.execute_script("arguments[0].scrollIntoView()", ui.wait_for_text("Metadata"))
            time.sleep(1)  # the charts draw their lines
            driver.save_screenshot(str(plots))
    return [lineage, plots]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIRECTORY
    for path in save_pictures(target):
        print(f"saved {path}")
