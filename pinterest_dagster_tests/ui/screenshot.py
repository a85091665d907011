"""`make screenshot`: the global asset lineage as the UI draws it, saved for the README.

Usage: python -m pinterest_dagster_tests.ui.screenshot [docs/images/asset-lineage.png]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pinterest_dagster.settings import REPO_ROOT
from pinterest_dagster_tests.ui.browser import GROUPS, DagsterUI, chromium, dagster_dev, dagster_dev_env

DEFAULT_OUTPUT = REPO_ROOT / "docs/images/asset-lineage.png"


def save_lineage(output: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # Topics and a lake of its own, so the picture does not depend on (or touch) local data.
        env = dagster_dev_env(Path(tmp) / "home", PINTEREST_TOPIC_PREFIX="screenshot", PINTEREST_LAKE_ROOT=f"{tmp}/lake")
        with dagster_dev(env, Path(tmp) / "dagster_dev.log") as url, chromium() as driver:
            ui = DagsterUI(driver, url)
            ui.open("/asset-groups")
            ui.wait(lambda: ui.graph_group_names() == set(GROUPS), f"the groups {GROUPS} in the graph")
            ui.wait(lambda: "fetching statuses" not in driver.page_source, "the groups' asset statuses")
            output.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(output))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    save_lineage(target)
    print(f"saved {target}")
