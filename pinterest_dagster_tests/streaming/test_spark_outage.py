"""A run that cannot reach Spark Connect fails within the configured time instead of waiting out the outage."""

from __future__ import annotations

import os

import pytest

from pinterest_dagster.lib.microbatch import run_config
from pinterest_dagster.lib.offsets import OffsetRange
from pinterest_dagster_tests.pipeline import execute_job_cli
from pinterest_dagster_tests.services import free_port


def test_a_micro_batch_without_a_reachable_spark_connect_server_fails_within_its_timeout(tmp_path):
    env = {
        **os.environ, "DAGSTER_HOME": str(tmp_path), "PINTEREST_LAKE_ROOT": str(tmp_path / "lake"),
        "SPARK_REMOTE": f"sc://127.0.0.1:{free_port()}", "PINTEREST_SPARK_CONNECT_TIMEOUT_SECONDS": "5",
    }
    # With Spark's default retry policy this run would wait for over 10 min; the subprocess gets 3.
    with pytest.raises(AssertionError) as failed:
        execute_job_cli("streaming_job", run_config([OffsetRange("pinterest.pin", 0, 0, 10)]), env, tmp_path,
                        timeout_s=180)
    assert "SparkUnavailableError: no Spark Connect server answered at sc://127.0.0.1:" in str(failed.value), str(failed.value)[-1500:]
    assert "within 5 s (PINTEREST_SPARK_CONNECT_TIMEOUT_SECONDS)" in str(failed.value)
