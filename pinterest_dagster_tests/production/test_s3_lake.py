"""The whole pipeline on an S3 lake: a real S3-compatible server (moto's) on 127.0.0.1, reached by boto3
through dagster-aws's S3Resource and by Spark through hadoop-aws's s3a, configured from the same settings."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import dagster as dg
import pytest

from pinterest_dagster.definitions import build_definitions
from pinterest_dagster.lib.kafka import ensure_topics, offset_bounds
from pinterest_dagster.lib.microbatch import plan_microbatches, run_config
from pinterest_dagster.lib.resources import LakeResource
from pinterest_dagster.lib.s3 import LakeUnavailableError, check_bucket, s3_resource
from pinterest_dagster.settings import REPO_ROOT, TOPIC_KINDS
from pinterest_dagster_tests.pipeline import Pipeline
from pinterest_dagster_tests.services import free_port, isolated_settings, require_kafka

BUCKET = "pinterest-lake"
POSTS = 300
MALFORMED = ["not json", "[]"]
# moto accepts any credentials; they reach boto3 and s3a only through the environment, as in production.
TABLES = ["raw/pin", "raw/geo", "raw/user", "raw/rejects", "cleaned/pin", "cleaned/geo", "cleaned/user",
          "realtime/poster_popularity", "realtime/category_trends", "aggregated/top_category_by_country",
          "aggregated/users_joined_by_year"]
AWS_ENV = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_REGION": "us-east-1"}

# One process runs both jobs and reads the tables back: the tests' shared Spark session has no s3a jars,
# and a Spark session per step of the check would triple the test's time.
RUN_AND_COUNT = """
import json, sys
import dagster as dg
from pinterest_dagster.definitions import build_definitions
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import Settings
request = json.loads(sys.stdin.read())
settings = Settings.from_env()
defs = build_definitions(settings)
with dg.instance_for_test() as instance:
    for job, config in request["jobs"]:
        assert defs.resolve_job_def(job).execute_in_process(run_config=config, instance=instance).success, job
spark = build_spark_session(settings)  # the session the runs used
counts = {t: delta.read_table(spark, settings.table_path(*t.split("/"))).count() for t in request["tables"]}
keys = delta.read_table(spark, settings.table_path("raw", "pin")).select("index").distinct().count()
print(json.dumps({"counts": counts, "distinct_pin_keys": keys}))
"""


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """moto's standalone S3 server on a free loopback port, for this module."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert server.poll() is None and time.monotonic() < deadline, "moto's S3 server did not start"
        time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait()


@pytest.fixture(scope="module")
def s3_env(s3_endpoint):
    env = {**AWS_ENV, "AWS_ENDPOINT_URL_S3": s3_endpoint}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # boto3 in this process reads the same variables as the jobs' processes
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def s3_pipeline(s3_env, source_url):
    settings = isolated_settings(lake_root=f"s3a://{BUCKET}/lake", s3_endpoint_url=s3_env["AWS_ENDPOINT_URL_S3"],
                                 aws_region=s3_env["AWS_REGION"])
    require_kafka(settings)
    ensure_topics(settings)
    s3_resource(settings).get_client().create_bucket(Bucket=BUCKET)
    return Pipeline(settings, build_definitions(settings), source_url)


@pytest.fixture(scope="module")
def lake_after_stream_and_batch(s3_pipeline, s3_env):
    """One sensor-sized micro-batch of everything posted, then batch_job, both writing to S3."""
    s3_pipeline.post_emulated(posts=POSTS, seed=11)
    s3_pipeline.send("pin", MALFORMED)
    settings = s3_pipeline.settings
    bounds = {(tp.topic, tp.partition): b for tp, b in offset_bounds(settings, list(settings.topics.values())).items()}
    (batch,), _ = plan_microbatches({}, bounds, max_records_per_run=10_000, max_runs=1)
    request = {"jobs": [["streaming_job", run_config(batch)], ["batch_job", {}]], "tables": TABLES}
    env = {key: value for key, value in os.environ.items() if key != "SPARK_REMOTE"}  # PySpark reads it even empty
    env.update(s3_env, PINTEREST_TOPIC_PREFIX=settings.topic_prefix, PINTEREST_LAKE_ROOT=settings.lake_root)
    done = subprocess.run([sys.executable, "-c", RUN_AND_COUNT], input=json.dumps(request), env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, [line for line in done.stderr.splitlines() if "Error" in line][:10] or done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def lake_objects(pipeline: Pipeline) -> list[str]:
    client = s3_resource(pipeline.settings).get_client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="lake/")
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_raw_cleaned_realtime_and_aggregated_tables_are_written_to_s3(lake_after_stream_and_batch, s3_pipeline):
    counts = lake_after_stream_and_batch["counts"]
    assert [counts[f"raw/{kind}"] for kind in TOPIC_KINDS] == [POSTS] * 3
    assert counts["raw/rejects"] == len(MALFORMED)
    keys = lake_after_stream_and_batch["distinct_pin_keys"]
    assert [counts[f"cleaned/{kind}"] for kind in TOPIC_KINDS] == [keys] * 3
    assert counts["realtime/poster_popularity"] > 0 and counts["aggregated/top_category_by_country"] > 0
    objects = lake_objects(s3_pipeline)
    for table in ("raw/pin", "cleaned/pin", "realtime/category_trends", "aggregated/users_joined_by_year"):
        assert f"lake/{table}/_delta_log/00000000000000000000.json" in objects, table


def test_a_missing_bucket_fails_in_one_sentence_naming_bucket_and_endpoint(s3_pipeline, s3_endpoint):
    """Checked where every run checks it: when the lake resource is set up."""
    lake = LakeResource(root="s3a://no-such-bucket/lake", s3=s3_resource(s3_pipeline.settings))
    with pytest.raises(LakeUnavailableError, match=f"'no-such-bucket' does not exist at {s3_endpoint}"):
        lake.setup_for_execution(dg.build_init_resource_context())


def test_an_unreachable_endpoint_fails_in_one_sentence(s3_pipeline):
    settings = isolated_settings(lake_root="s3a://b/lake", s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(LakeUnavailableError, match="cannot reach the lake's bucket 'b' at http://127.0.0.1"):
        check_bucket(s3_resource(settings), settings.lake_root)
