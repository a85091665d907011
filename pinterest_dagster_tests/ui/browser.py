"""`dagster dev` on the project's workspace, seen through Debian's headless Chromium (Selenium).

Shared by the UI test and `make screenshot`, so the README's picture comes from the code the test runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from pinterest_dagster.settings import REPO_ROOT
from pinterest_dagster_tests.services import CRON_OF_NO_RUN, free_port

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
GROUPS = ("kafka", "raw", "cleaned", "realtime", "aggregated")
VIEWPORT = (1400, 900)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    return f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)" if missing else None


def dagster_dev_env(home: Path, **env) -> dict:
    """The environment of a `dagster dev` with its own instance (the project's dagster.yaml) in `home`; the daily
    batch, on by default at 00:00 UTC, moved to a time no test meets (January 1st, 03:00 UTC)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "infra/dagster/dagster.yaml", home / "dagster.yaml")
    return {**os.environ, "DAGSTER_HOME": str(home), "PINTEREST_BATCH_CRON": CRON_OF_NO_RUN, **env}


@contextmanager
def dagster_dev(env: dict, log_path: Path, timeout_s: float = 90, daemon: bool = True):
    """`dagster dev` (webserver and daemon) on a free port; yields its URL, then stops its whole session.
    Without `daemon`, the webserver alone: it shows the instance and launches nothing by itself."""
    port = free_port()
    command = ["dagster", "dev"] if daemon else ["dagster-webserver"]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(REPO_ROOT / ".venv/bin" / command[0]), *command[1:], "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_webserver(url, process, log_path, timeout_s)
        yield url
    finally:
        stop_session(process)


def wait_for_webserver(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"dagster dev did not serve {url} within {timeout_s:.0f} s:\n{log_path.read_text()[-3000:]}")


def run_status(url: str, run_id: str) -> str:
    """The run's status as the webserver's GraphQL API gives it (SUCCESS, FAILURE, STARTED...); "" when the
    webserver did not answer (ask again)."""
    query = 'query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }'
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query, "variables": {"id": run_id}}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
    except OSError:
        return ""
    return answer["data"]["runOrError"].get("status", answer["data"]["runOrError"]["__typename"])


def stop_session(process: subprocess.Popen) -> None:
    """SIGTERM the process group (webserver, daemon, code servers), then SIGKILL what is left: dagster dev
    can take more than 10 s to stop on a signal, and its instance is a throwaway."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(5)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


@contextmanager
def chromium(viewport: tuple[int, int] = VIEWPORT, scale: float = 1.0):
    """Headless Chromium; `scale` < 1 lays the page out on a larger viewport in the same pixels."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)  # no sandbox: CI runs as root
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        # The window size includes browser chrome; this sets the page's own size exactly.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": round(viewport[0] / scale), "height": round(viewport[1] / scale),
            "deviceScaleFactor": scale, "mobile": False,
        })
        yield driver
    finally:
        driver.quit()


class DagsterUI:
    """The pages and actions of the Dagster UI that the test uses, found by their visible text."""

    def __init__(self, driver: webdriver.Chrome, url: str, timeout_s: float = 30):
        self.driver, self.url, self.timeout_s = driver, url, timeout_s
        # A first visit opens a "Join the Dagster community" dialog over every page, unless the browser's
        # storage says it was dismissed before.
        driver.get(f"{url}/server_info")
        driver.execute_script("window.localStorage.setItem('communityNux', '\"1\"')")

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def wait(self, condition, what: str, timeout_s: float | None = None):
        return WebDriverWait(self.driver, timeout_s or self.timeout_s, ignored_exceptions=[WebDriverException]).until(
            lambda _: condition(), message=f"timed out waiting for {what} at {self.driver.current_url}"
        )

    def elements_with_text(self, text: str, tag: str = "*") -> list:
        """The innermost elements whose whole text is `text` (React may split it into several text nodes)."""
        same = f"normalize-space(.)={xpath_literal(text)}"
        return self.driver.find_elements(By.XPATH, f"//{tag}[{same}][not(*[{same}])]")

    def wait_for_text(self, text: str, tag: str = "*", timeout_s: float | None = None):
        return self.wait(lambda: next(iter(self.visible(text, tag)), None), f"{text!r} on the page", timeout_s)

    def visible(self, text: str, tag: str = "*") -> list:
        return [e for e in self.elements_with_text(text, tag) if e.is_displayed()]

    def click(self, text: str, tag: str = "*") -> None:
        self.wait_for_text(text, tag).click()

    def actions(self) -> ActionChains:
        return ActionChains(self.driver)

    def graph_group_names(self) -> set[str]:
        """The asset groups drawn in the lineage graph (group boxes, collapsed or expanded)."""
        return {e.text.strip() for e in self.driver.find_elements(By.CSS_SELECTOR, "foreignObject.group [data-tooltip]")}

    def save_page(self, directory: Path, name: str) -> list[Path]:
        """A screenshot and the rendered HTML of the current page, to read a failure."""
        directory.mkdir(parents=True, exist_ok=True)
        png, html = directory / f"{name}.png", directory / f"{name}.html"
        self.driver.save_screenshot(str(png))
        html.write_text(self.driver.page_source)
        return [png, html]


def xpath_literal(text: str) -> str:
    return f"'{text}'" if "'" not in text else f'"{text}"'

