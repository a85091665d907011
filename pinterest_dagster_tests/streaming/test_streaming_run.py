"""streaming_job runs, as the sensor requests them, on the real broker and lake: through the local Spark Connect server
and a Spark standalone cluster's, each run in a `dagster job execute` process of its own; and in process, the runs
whose own result a test reads."""

from __future__ import annotations

import os
import select
import subprocess

import dagster as dg
import pytest
from pyspark.sql import functions as F

from pinterest_dagster.defs.streaming.sensors import build_kafka_microbatch_sensor
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.kafka import end_offsets
from pinterest_dagster.lib.microbatch import run_config
from pinterest_dagster.lib.realtime_state import REALTIME_TABLES
from pinterest_dagster.lib.resources import KafkaResource
from pinterest_dagster.lib.spark import PER_STEP_CODEGEN
from pinterest_dagster.transforms.aggregate import AGGREGATES
from pinterest_dagster.transforms.columns import COLUMN_DESCRIPTIONS
from pinterest_dagster_tests.pipeline import make_pipeline
from pinterest_dagster_tests.services import (
    REPO_ROOT, SPARK_CLUSTER_REMOTE, require_spark_connect, restart_spark_cluster_connect, run_session_settings,
    spark_cluster_executors,
)

MALFORMED = ["not json", "[]", '{"ind": "x"}']
POSTS = 600
CLUSTER_SHUFFLE_PARTITIONS = 3
TABLE_NAMES = {"cleaned": ["pin", "geo", "user"], "realtime": sorted(REALTIME_TABLES), "aggregated": sorted(AGGREGATES)}


def sensor_run_configs(pipeline, cursor=None, max_records=1_000):
    sensor = build_kafka_microbatch_sensor(max_records_per_run=max_records, max_in_flight=10, wait_seconds=0)
    kafka = KafkaResource.from_settings(pipeline.settings)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"kafka": kafka})
        result = sensor.evaluate_tick(context)
    return [r.run_config for r in result.run_requests], result.cursor


# The backlog's micro-batches, the daily batch and its checks run on the Spark Connect server that `make up`
# starts (what `make dev` and `make demo` use) and on a Spark standalone cluster; in process (as the other test
# modules' runs) only the tests that read a run's own result or need its process, after one small micro-batch
# of their own (`first_batch`).
@pytest.fixture(scope="module", params=["spark-connect", "spark-cluster"])
def pipeline(request, spark, tmp_path_factory, source_url):
    """The same micro-batches on the Spark Connect server that `make up` starts and on a Spark standalone
    cluster of two workers through its own Connect server, with the settings a cluster gets (no small-machine
    tuning); or ("in-process", by indirect parametrization) with Spark in the run's process."""
    if request.param == "spark-cluster":
        # Spark's 200 shuffle partitions and Delta's 50 snapshot partitions would make every merge of these
        # small batches hundreds of tasks on two one-core workers: the deployment sizes them for its cluster
        # (PINTEREST_SPARK_CONF), as a real one would.
        overrides = tmp_path_factory.mktemp("spark") / "spark-defaults.conf"
        overrides.write_text(f"spark.sql.shuffle.partitions {CLUSTER_SHUFFLE_PARTITIONS}\n"
                             "spark.databricks.delta.snapshotPartitions=2\n")
        return make_pipeline(tmp_path_factory, source_url, spark_remote=request.getfixturevalue("spark_cluster"),
                             spark_tuning="none", spark_conf_file=str(overrides))
    remote = require_spark_connect() if request.param == "spark-connect" else None
    return make_pipeline(tmp_path_factory, source_url, spark_remote=remote)


@pytest.fixture(scope="module")
def streamed(pipeline):
    """The backlog through the runs the sensor plans for it: on the Connect server several, as the record bound
    splits it; on the cluster one, where a run's fixed cost is highest (the set-up took 278 s with several runs
    in CI's trial of 2026-12-07, 126 s with one run by itself). That run creates the cluster's tables: merges into
    tables that hold rows run on the Connect server here, and in process in the other modules."""
    pipeline.post_emulated(posts=POSTS, seed=4)
    pipeline.send("geo", MALFORMED)
    on_cluster = pipeline.settings.spark_remote == SPARK_CLUSTER_REMOTE
    configs, cursor = sensor_run_configs(pipeline, max_records=10_000 if on_cluster else 1_000)
    if on_cluster:
        assert len(configs) == 1, "the whole backlog should fit in one run"
    else:
        assert len(configs) > 1, "the record bound should split this backlog into several runs"
    for config in configs:
        pipeline.run_job("streaming_job", config)
    return configs


def table(spark, pipeline, layer, name):
    return delta.read_table(spark, pipeline.settings.table_path(layer, name))


def counts(spark, pipeline):
    tables = [("raw", "pin"), ("raw", "geo"), ("raw", "user"), ("raw", "rejects"), ("cleaned", "pin"),
              ("cleaned", "geo"), ("cleaned", "user"), ("realtime", "poster_popularity"),
              ("realtime", "category_trends")]
    return {t: table(spark, pipeline, *t).count() for t in tables}


def test_every_event_is_in_raw_or_rejects_exactly_once(streamed, spark, pipeline):
    c = counts(spark, pipeline)
    assert (c[("raw", "pin")], c[("raw", "geo")], c[("raw", "user")]) == (POSTS, POSTS, POSTS)
    assert c[("raw", "rejects")] == len(MALFORMED)
    for kind in ("pin", "geo", "user"):
        raw = table(spark, pipeline, "raw", kind)
        assert raw.select("_partition", "_offset").distinct().count() == POSTS


def test_cleaned_tables_hold_one_row_per_distinct_key(streamed, spark, pipeline):
    keys = table(spark, pipeline, "raw", "pin").select("index").distinct().count()
    for kind in ("pin", "geo", "user"):
        assert table(spark, pipeline, "cleaned", kind).count() == keys


def test_realtime_tables_agree_with_the_cleaned_and_raw_tables(streamed, spark, pipeline):
    popularity = table(spark, pipeline, "realtime", "poster_popularity")
    cleaned_pin = table(spark, pipeline, "cleaned", "pin").where(F.col("poster_name").isNotNull())
    assert popularity.agg(F.sum("pin_count")).first()[0] == cleaned_pin.count()
    assert popularity.count() == cleaned_pin.select("poster_name").distinct().count()
    expected_top = {
        r["poster_name"]: r["follower_count"]
        for r in cleaned_pin.groupBy("poster_name").agg(F.max("follower_count").alias("follower_count")).collect()
    }
    # Every poster's follower count is the same on all their pins in generated data.
    assert {r["poster_name"]: r["follower_count"] for r in popularity.collect()} == expected_top

    trends = table(spark, pipeline, "realtime", "category_trends")
    pins_with_category = table(spark, pipeline, "raw", "pin").where("trim(category) != ''").count()
    assert trends.agg(F.sum("pin_count")).first()[0] == pins_with_category


# Idempotence is the same whatever runs Spark: one mode shows it, and the cluster's minute goes elsewhere.
@pytest.mark.parametrize("pipeline", ["spark-connect"], indirect=True)
def test_re_executing_a_micro_batch_changes_nothing(streamed, spark, pipeline):
    before = counts(spark, pipeline)
    trends_before = sorted(map(tuple, table(spark, pipeline, "realtime", "category_trends").collect()))
    pipeline.run_job("streaming_job", streamed[0])
    assert counts(spark, pipeline) == before
    assert sorted(map(tuple, table(spark, pipeline, "realtime", "category_trends").collect())) == trends_before


def rows(spark, pipeline, layers):
    return {(layer, name): sorted(map(str, table(spark, pipeline, layer, name).collect()))
            for layer in layers for name in TABLE_NAMES[layer]}


@pytest.fixture(scope="module")
def daily(streamed, spark, pipeline):
    """The tables the micro-batches merged, then the daily batch's nine tables."""
    merged = rows(spark, pipeline, ["cleaned", "realtime"])
    pipeline.run_batch_job()  # incremental: nothing new to ingest or merge; succeeds only if every blocking check passes
    return merged, rows(spark, pipeline, ["cleaned", "realtime", "aggregated"])


def test_the_daily_batch_builds_the_aggregated_tables_and_leaves_what_the_micro_batches_merged(daily):
    merged, after = daily
    assert {t: r for t, r in after.items() if t[0] != "aggregated"} == merged
    assert all(r for t, r in after.items() if t[0] == "aggregated"), [t for t, r in after.items() if not r]


# The rebuild reads raw the same way whatever runs Spark: it runs on the Connect server, as `make dev`'s runs do
# (test_batch_job.py and test_maintenance.py run it in process).
@pytest.mark.parametrize("pipeline", ["spark-connect"], indirect=True)
def test_the_rebuild_gives_the_tables_the_micro_batches_and_the_daily_batch_gave(daily, spark, pipeline):
    pipeline.run_rebuild_job()  # every table recomputed from raw
    assert rows(spark, pipeline, ["cleaned", "realtime", "aggregated"]) == daily[1]


@pytest.fixture(scope="module")
def first_batch(pipeline):
    """In process: a few posts and a malformed event through one micro-batch, so every raw, cleaned and realtime
    table exists and holds everything sent so far; the run's in-process result."""
    sent = pipeline.ranges_sent_by(lambda: (pipeline.post_emulated(posts=20, seed=4), pipeline.send("geo", MALFORMED[:1])))
    return pipeline.run_job("streaming_job", run_config(sent))


@pytest.mark.parametrize("pipeline", ["in-process"], indirect=True)
def test_each_ingestion_observes_its_topics_end_offsets_and_how_far_the_lake_is_behind(first_batch, pipeline):
    sent = sorted(pipeline.ranges_sent_by(lambda: pipeline.post_emulated(posts=30, seed=9)))
    first, rest = sent[0], sent[1:]
    result = pipeline.run_job("streaming_job", run_config([first]))
    observed = {e.asset_observation_data.asset_observation.asset_key.path[-1]: e.asset_observation_data.asset_observation.metadata
                for e in result.all_events if e.is_asset_observation}
    ends = end_offsets(pipeline.settings, list(pipeline.settings.topics.values()))
    for kind, topic in pipeline.settings.topics.items():
        metadata = {name: value.value for name, value in observed[kind].items()}
        assert metadata["end_offset"] == sum(end for tp, end in ends.items() if tp.topic == topic)
        # Everything streamed before is in the lake: what waits is what this run left of the new events.
        assert metadata["lag_events"] == sum(r.size for r in rest if r.topic == topic)
    waiting = observed[first.topic.rsplit(".", 1)[1]]
    assert waiting["lag_seconds"].value > 0 if waiting["lag_events"].value else waiting["lag_seconds"].value == 0

@pytest.mark.parametrize("pipeline", ["in-process"], indirect=True)
def test_every_materialization_shows_its_tables_columns_each_described(first_batch, spark, pipeline):
    # What the UI shows on an asset's page: the schema of its last materialization (a micro-batch's for raw,
    # cleaned and realtime tables, the daily batch's for the aggregated ones), and raw's from its definition.
    results = [first_batch, pipeline.run_batch_job()]
    schemas = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
               for result in results for e in result.all_events if e.is_step_materialization}
    specs = {spec.key.to_user_string(): spec.metadata for spec in pipeline.defs.resolve_all_asset_specs()}
    tables = {"raw": ["pin", "geo", "user", "rejects"], **TABLE_NAMES}
    for layer, names in tables.items():
        for name in names:
            actual = [(f.name, f.dataType.simpleString()) for f in table(spark, pipeline, layer, name).schema.fields]
            shown = [specs[f"{layer}/{name}"]] if layer == "raw" else []
            for metadata in [schemas[f"{layer}/{name}"], *shown]:
                value = metadata["dagster/column_schema"]  # a definition keeps the TableSchema itself
                columns = getattr(value, "schema", value).columns
                assert [(c.name, c.type) for c in columns] == actual, f"{layer}/{name}"
                assert all(c.description == COLUMN_DESCRIPTIONS[c.name] for c in columns), f"{layer}/{name}"


@pytest.mark.parametrize("pipeline", ["in-process"], indirect=True)
def test_a_cleaned_or_realtime_table_materialized_alone_fails_saying_what_to_materialize(first_batch, spark, pipeline):
    before = counts(spark, pipeline)
    job = pipeline.defs.resolve_implicit_global_asset_job_def()
    for key in (["cleaned", "pin"], ["realtime", "poster_popularity"]):
        result = job.execute_in_process(asset_selection=[dg.AssetKey(key)], instance=dg.DagsterInstance.ephemeral(),
                                        raise_on_error=False)
        [failure] = [e for e in result.all_events if e.is_step_failure]
        message = failure.step_failure_data.error.message
        assert "/".join(key) in message and "materialize them together with raw/*" in message and "rebuild_job" in message
    assert counts(spark, pipeline) == before


@pytest.mark.parametrize("pipeline", ["spark-cluster"], indirect=True)
def test_on_a_cluster_the_work_runs_in_executors_on_both_workers_with_the_clusters_own_settings(streamed, pipeline):
    # From the workers' own status: each runs an executor of the Connect server's application. A driver on
    # a standalone master runs no task itself, so every micro-batch above ran in them.
    executors = spark_cluster_executors()
    assert len(executors) == 2 and all(count >= 1 for count in executors.values()), executors
    # A run's session there keeps the cluster's defaults: none of the small-machine tuning (ANSI off, per-step
    # code generation) reaches it, only UTC and the deployment's own overrides.
    keys = ["spark.sql.shuffle.partitions", "spark.sql.ansi.enabled", PER_STEP_CODEGEN, "spark.sql.session.timeZone"]
    assert run_session_settings(pipeline.settings, keys) == {
        "spark.sql.shuffle.partitions": str(CLUSTER_SHUFFLE_PARTITIONS), "spark.sql.ansi.enabled": None,
        PER_STEP_CODEGEN: None, "spark.sql.session.timeZone": "UTC",
    }


@pytest.mark.parametrize("pipeline", ["spark-cluster"], indirect=True)
def test_a_process_outliving_a_restart_of_its_connect_server_gets_a_new_session(pipeline, tmp_path):
    # A long-lived process (a benchmark, the demo) asks for a session again after `make down`/`make up`: the
    # restarted server no longer knows the one it held (SESSION_CHANGED). One process meets the restart when
    # asking for a session, the other in a query on the session it holds; each must get one new, shared session.
    asks_first = (
        "print(build_spark_session(settings).range(3).count(), flush=True)\n"
        "sys.stdin.readline()\n"
        "print(build_spark_session(settings).range(5).count(), flush=True)\n"
    )
    queries_first = (
        "held = build_spark_session(settings)\n"
        "print(held.range(3).count(), flush=True)\n"
        "sys.stdin.readline()\n"
        "try:\n"
        "    held.range(1).count()\n"
        "except Exception:\n"
        "    print('failed', flush=True)\n"
        "new = build_spark_session(settings)\n"
        "print(new.range(5).count(), new is build_spark_session(settings), new is not held, flush=True)\n"
    )
    env = {**os.environ, "SPARK_REMOTE": pipeline.settings.spark_remote, "PINTEREST_SPARK_TUNING": "none"}
    # Each process's stderr goes to a file: a pipe nobody reads would block a process that logs much, and reading
    # it before the process ends would block the test.
    errors = [tmp_path / f"{name}.err" for name in ("asks_first", "queries_first")]
    error_files = [error.open("w") for error in errors]
    processes = [
        subprocess.Popen([str(REPO_ROOT / ".venv/bin/python"), "-c",
                          "import sys\nfrom pinterest_dagster.lib.spark import build_spark_session\n"
                          "from pinterest_dagster.settings import Settings\nsettings = Settings.from_env()\n" + script],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=error_file, text=True, cwd=REPO_ROOT,
                         env=env)
        for script, error_file in zip((asks_first, queries_first), error_files)
    ]
    try:
        for process, error in zip(processes, errors):
            answered, _, _ = select.select([process.stdout], [], [], 180)
            first = process.stdout.readline().strip() if answered else "(nothing in 180 s)"
            if first != "3":
                process.kill()
                process.wait()
                pytest.fail(f"first answer {first!r}, not 3: {error.read_text()[-2000:]}")
        restart_spark_cluster_connect()
        (asked, _), (queried, _) = [process.communicate("\n", timeout=180) for process in processes]
    finally:
        for process, error_file in zip(processes, error_files):
            process.kill()
            error_file.close()
    assert asked.strip() == "5" and processes[0].returncode == 0, errors[0].read_text()[-2000:]
    assert queried.split() == ["failed", "5", "True", "True"], errors[1].read_text()[-2000:]
