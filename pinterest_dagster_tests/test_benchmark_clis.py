"""The benchmarks' own command lines, as docs/ gives them: every module's `--help`, and those that
`python -m benchmarks` does not run through their command line run here for real, at small sizes (history,
first_minutes and soak run through theirs in `make bench-quick`, which CI runs when it can start it within its
first 50 minutes).
"""

from __future__ import annotations

import re
import sys

import pytest

from pinterest_dagster.lib.kafka import ensure_topics
from pinterest_dagster.settings import LOCAL_DIR, REPO_ROOT
from pinterest_dagster_tests.services import isolated_settings, require_kafka, require_spark_connect, run_module
from pinterest_dagster_tests.test_docs import help_text

# Every module of benchmarks/ that runs as a command (python -m benchmarks.X), found from its __main__ guard.
MODULES = sorted(
    "benchmarks" if path.name == "__main__.py" else f"benchmarks.{path.stem}"
    for path in (REPO_ROOT / "benchmarks").glob("*.py")
    if path.name == "__main__.py" or 'if __name__ == "__main__":' in path.read_text()
)


def test_every_benchmark_module_names_itself_and_its_options():
    documented = "".join(path.read_text() for path in [REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")])
    assert {"benchmarks", "benchmarks.soak", "benchmarks.structured_streaming"} <= set(MODULES)
    for module in MODULES:
        # test_docs' help_text, cached: a module whose --help the docs' commands already needed is not run again.
        assert help_text(module, None).startswith(f"usage: python -m {module}")
        # The module itself, not a longer name it begins (python -m benchmarks.soak gives no python -m benchmarks).
        assert re.search(rf"python -m {re.escape(module)}(?![\w.])", documented), f"no page of docs/ gives `python -m {module}`"


@pytest.mark.kafka
def test_the_load_generator_posts_what_it_is_asked(source_url):
    settings = isolated_settings()
    require_kafka(settings)
    ensure_topics(settings)  # as `python -m emulator topics` does
    done = run_module("benchmarks.load", "--rate", "0", "--posts", "100", "--seed", "1",
                      env={"SOURCE_DB_URL": source_url, "PINTEREST_TOPIC_PREFIX": settings.topic_prefix})
    assert done.returncode == 0, done.stderr
    assert re.search(r"^posted 300 events in [\d.]+ s", done.stderr, re.M), done.stderr


@pytest.mark.kafka
@pytest.mark.spark
def test_raw_storage_prints_bytes_per_event_of_each_raw_table(source_url):
    require_kafka(isolated_settings())
    done = run_module("benchmarks.raw_storage", "--posts", "300", env={"SOURCE_DB_URL": source_url})
    assert done.returncode == 0, done.stderr[-3000:]
    figures = dict(re.findall(r"(pin|geo|user|all) ([\d.]+)", done.stdout.split("raw bytes per event:")[1]))
    assert set(figures) == {"pin", "geo", "user", "all"} and all(float(value) > 0 for value in figures.values()), done.stdout


def bench_workspaces() -> set[str]:
    return {path.name for path in (LOCAL_DIR / "bench").glob("bench-*")}


@pytest.fixture
def bench_env(source_url):
    """What a benchmark command line needs here (the seeded source, the local Connect server); afterwards, no
    workspace of its own may be left: each is run with --discard."""
    require_kafka(isolated_settings())
    before = bench_workspaces()
    yield {"SOURCE_DB_URL": source_url, "SPARK_REMOTE": require_spark_connect()}
    assert bench_workspaces() == before, "--discard left a workspace behind"


@pytest.mark.kafka
@pytest.mark.spark
def test_the_streaming_benchmark_drains_a_backlog_and_times_a_steady_load(bench_env):
    done = run_module("benchmarks.streaming", "throughput", "--posts", "200", "--discard", env=bench_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"^drained 600 events \(3 topics\) in [\d.]+ s with [1-9]\d* runs", done.stdout, re.M), done.stdout
    done = run_module("benchmarks.streaming", "latency", "--rate", "30", "--seconds", "5", "--discard", env=bench_env)
    assert done.returncode == 0, done.stderr[-3000:]
    found = re.search(r"^([\d,]+) pin events at 90 events/s for 5 s: produce -> cleaned/pin latency p50 ([\d.]+) s, "
                      r"p95 ([\d.]+) s, p99 ([\d.]+) s; ([1-9]\d*) micro-batches", done.stdout, re.M)
    assert found, done.stdout
    assert int(found[1].replace(",", "")) > 0 and 0 < float(found[2]) <= float(found[3]) <= float(found[4]), done.stdout
    # The local Connect server's CPU per micro-batch, from its /proc entry.
    assert re.search(r"^the local Spark Connect server used [\d.]+ CPU-seconds", done.stdout, re.M), done.stdout


@pytest.mark.kafka
@pytest.mark.spark
def test_the_dagster_storage_benchmark_measures_before_and_after_housekeeping(bench_env):
    done = run_module("benchmarks.dagster_storage", "--runs", "2", "--rate", "20", "--discard", env=bench_env)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = dict(re.findall(r"^([a-z_0-9]+): ([\d,.]+)$", done.stdout, re.M))
    assert int(figures["micro_batches"].replace(",", "")) >= 2, done.stdout
    assert figures["left_after_housekeeping"] == "0", done.stdout  # every successful micro-batch deleted
    assert int(figures["bytes_after"].replace(",", "")) < int(figures["bytes_before"].replace(",", "")), done.stdout


# A load for the profile: Spark Connect queries for 8 s, each with executor tasks.
CONNECT_QUERIES = """
import os, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.remote(os.environ["SPARK_REMOTE"]).getOrCreate()
started = time.monotonic()
while time.monotonic() - started < 8:
    spark.range(200_000).selectExpr("sum(id)").collect()
"""


@pytest.mark.kafka
@pytest.mark.spark
def test_the_profile_samples_the_connect_server_while_its_load_runs(bench_env, tmp_path):
    stacks = tmp_path / "server.collapsed"
    done = run_module("benchmarks.profile", "--after", "2", "--seconds", "4", "--out", str(stacks),
                      "--", sys.executable, "-c", CONNECT_QUERIES, env=bench_env)
    assert done.returncode == 0, done.stderr[-3000:]
    samples = re.search(r"^([\d,]+) samples \(([\d.]+) CPU-seconds", done.stdout, re.M)
    assert samples and int(samples[1].replace(",", "")) > 0, done.stdout
    parts = {part: float(share) for share, part in re.findall(r"^\s*([\d.]+)%  (.+)$", done.stdout, re.M)}
    assert abs(sum(parts.values()) - 100) < 1 and parts.get("executor tasks", 0) > 0, done.stdout
    # The stacks, one line per stack ending in its count: a flame graph's input.
    assert all(re.search(r"\S+ \d+$", line) for line in stacks.read_text().splitlines()), stacks.read_text()[:500]

