"""What every side-by-side benchmark shares: a fresh workspace, progress lines, result checks, results.

A benchmark answers "what does Dagster orchestration cost compared with the tool I would otherwise
use?" with a ratio of two throughputs (or times) measured in the same run on the same data, and
checks that both sides produced the same result before it reports anything.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from kafka import KafkaAdminClient

from benchmarks.duckdb_reference import same_row
from pinterest_dagster.lib.kafka import client_config, connect_with_retry, ensure_topics
from pinterest_dagster.settings import LOCAL_DIR, REPO_ROOT, Settings, is_loopback
from pinterest_dagster_tests.services import NO_SCHEDULED_JOBS

BENCH_DIR = LOCAL_DIR / "bench"
_STARTED = time.monotonic()


class ResultMismatch(AssertionError):
    """The compared systems did not produce the same result: no time is reported for them."""


LOCAL_CONNECT_PORT = 15002  # infra/stack.sh's SPARK_CONNECT_PORT


def is_local_connect_server(spark_remote: str | None) -> bool:
    """Whether `spark_remote` (a SPARK_REMOTE) names the Spark Connect server `make up` starts."""
    remote = urlsplit(spark_remote or "")
    return is_loopback(remote.hostname) and remote.port == LOCAL_CONNECT_PORT


def local_connect_server_pid() -> int | None:
    """The pid of the Spark Connect server `make up` started (in .local/run), None when it is not running."""
    try:
        pid = int((LOCAL_DIR / "run" / "spark-connect.pid").read_text())
        Path(f"/proc/{pid}").stat()
    except (OSError, ValueError):
        return None
    return pid


def local_connect_server_cpu_s(spark_remote: str | None) -> float | None:
    """CPU seconds the local Spark Connect server (`make up`'s, pid in .local/run) has used so far, or None
    when `spark_remote` (a run's SPARK_REMOTE) is not that server. A micro-batch's Spark work runs in that
    process: the difference over a window, divided by the runs in it, is what a micro-batch costs the server."""
    pid = local_connect_server_pid() if is_local_connect_server(spark_remote) else None
    if pid is None:
        return None
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:  # it has just ended
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, counted in clock ticks


def progress(message: str) -> None:
    print(f"[bench {time.monotonic() - _STARTED:6.0f} s] {message}", file=sys.stderr, flush=True)


def fresh_workspace(max_records_per_run: int | None = None) -> tuple[Settings, dict]:
    """Own topics (created), own lake and own DAGSTER_HOME under .local/bench/, and the environment
    a subprocess (emulator, daemon, job) needs to use them."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    base = BENCH_DIR / name
    home = base / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "infra/dagster/dagster.yaml", home / "dagster.yaml")
    settings = Settings(**{**Settings.from_env().__dict__, "topic_prefix": name, "lake_root": str(base / "lake")})
    # The scheduled jobs, on by default, would take the lake's writes from the micro-batches being timed: the daily
    # batch at 00:00 UTC, maintenance at minute 47 of every hour (its pass of 2026-12-07 23:47 came right before the
    # history benchmark's first window on the lake with history), housekeeping at minute 17. Moved to January 1st,
    # 03:00 UTC, which no benchmark meets; the soak sets its own maintenance and housekeeping.
    env = {**os.environ, "DAGSTER_HOME": str(home), "PINTEREST_TOPIC_PREFIX": name, "PINTEREST_LAKE_ROOT": settings.lake_root,
           **NO_SCHEDULED_JOBS}
    if max_records_per_run:
        env["PINTEREST_MAX_RECORDS_PER_RUN"] = str(max_records_per_run)
    ensure_topics(settings)
    _workspaces.append(settings)
    return settings, env


_workspaces: list[Settings] = []


def discard_workspaces() -> None:
    """Delete the topics and folders of every workspace so far. Called after a benchmark succeeded only:
    a failed one leaves its topics and lakes for a look at what differed."""
    if not _workspaces:
        return
    admin = connect_with_retry(lambda: KafkaAdminClient(**client_config(_workspaces[0])), _workspaces[0])
    try:
        existing = admin.list_topics()
        while _workspaces:
            prefix = _workspaces.pop().topic_prefix
            # The workspace's topics and those named after it (the warm-up topics of Structured Streaming).
            admin.delete_topics([t for t in existing if t.startswith(prefix + ".") or t.startswith(prefix + "-")])
            shutil.rmtree(BENCH_DIR / prefix, ignore_errors=True)
    finally:
        admin.close()


def post(env: dict, *args: str) -> None:
    """`python -m emulator post --quiet ARGS` with this environment (its topics), to success."""
    subprocess.run([sys.executable, "-m", "emulator", "post", "--quiet", *args], cwd=REPO_ROOT, env=env, check=True)


def require_same(what: str, actual, expected) -> None:
    if actual != expected:
        raise ResultMismatch(f"{what} differ: {actual!r} != {expected!r}")


def require_same_rows(what: str, actual: list[tuple], expected: list[tuple]) -> None:
    """The same rows in any order; `what` names the table in the failure."""
    actual, expected = sorted(actual), sorted(expected)
    if len(actual) != len(expected):
        raise ResultMismatch(f"{what}: {len(actual)} rows != {len(expected)} rows")
    for a, e in zip(actual, expected):
        if not same_row(a, e):
            raise ResultMismatch(f"{what}: row {a!r} != {e!r}")


@dataclass
class Comparison:
    """One benchmark's outcome: the figures of both sides, their ratio and whether the target is met.

    `ratio` is Dagster's side over the other, oriented so that higher is better for Dagster (a
    throughput over a throughput, or the other side's time over Dagster's); `target` is the lowest
    ratio that meets the goal, None where the issue sets none (the figures are reported only).
    """

    name: str
    question: str
    figures: dict
    ratio: float
    target: float | None
    target_text: str
    unit: str
    parameters: dict = field(default_factory=dict)
    checked: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target

    @property
    def target_shown(self) -> str:
        """The target in words, with the lowest ratio that meets it: as the results table and the progress lines say it."""
        return self.target_text if self.target is None else f"{self.target_text} (≥ {self.target:.2f})"

    def as_dict(self) -> dict:
        return {**asdict(self), "met": self.met}


def percentiles(latencies: list[float]) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=100)
    return {"p50": q[49], "p95": q[94], "p99": q[98]}


def timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


# A benchmark that reads the lake through Spark's classic API (scan metrics, a session of its own that must
# not warm the Connect server) runs in a process of its own: `python -m benchmarks` holds Connect sessions,
# and a process that opened one cannot build a classic session.
def comparisons_from_process(module: str, *args: str) -> list[Comparison]:
    """`python -m <module> ARGS --json --discard`, which deletes its workspaces once it succeeded and
    prints its comparisons as one JSON line."""
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE")}
    done = subprocess.run([sys.executable, "-m", module, *args, "--json", "--discard"],
                          cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return [Comparison(**{k: v for k, v in c.items() if k != "met"}) for c in json.loads(done.stdout.strip().splitlines()[-1])]


def report_from_process(results: list[Comparison], as_json: bool, discard: bool) -> None:
    """The end of such a module's main: discard its workspaces if asked, then the JSON line or one line each."""
    if discard:
        discard_workspaces()
    if as_json:
        print(json.dumps([asdict(c) for c in results]))
        return
    for c in results:
        figures = ", ".join(f"{k} {v:,.2f}" if isinstance(v, int | float) else f"{k} {v}" for k, v in c.figures.items())
        if c.target is None:
            print(f"{c.name}: {c.question}: {figures}; ratio {c.ratio:.2f} (reported only: {c.target_text})")
            continue
        met = "met" if c.met else "NOT MET"
        print(f"{c.name}: {c.question}: {figures}; ratio {c.ratio:.2f}, target ≥ {c.target:.2f} ({c.target_text}): {met}")
