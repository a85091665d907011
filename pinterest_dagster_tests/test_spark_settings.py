"""Spark settings by where Spark runs: the small-machine tuning for the local stack only, what a remote
session receives, overrides from PINTEREST_SPARK_CONF, and which local services `make up` starts."""

from __future__ import annotations

import contextlib
import logging
import logging.config
import os
import subprocess
import sys
import time
from pathlib import Path

import pyspark
import pytest
from pyspark.sql.connect import logging as connect_logging

from pinterest_dagster.lib.spark import (
    CONNECT_CLIENT_LOGGER,
    PER_STEP_CODEGEN,
    SMALL_MACHINE_CONFIG,
    connect_server_args,
    fit_code_generation,
    spark_config,
)
from pinterest_dagster.local_stack import local_services, remote_services
from pinterest_dagster.settings import REPO_ROOT, Settings, SettingsError
from pinterest_dagster_tests.services import LOCAL_SPARK_REMOTE, free_port, port_open, require_spark_connect, run_session_settings

CLUSTER = {"SPARK_REMOTE": "sc://spark.prod.internal:15002"}


def server_config(env: dict) -> dict[str, str]:
    args = connect_server_args(Settings.from_env(env))
    return dict(arg.split("=", 1) for arg in args[1::2])


def test_a_remote_session_receives_only_what_correctness_needs():
    assert spark_config(Settings.from_env(CLUSTER)) == {
        "spark.remote": "sc://spark.prod.internal:15002", "spark.sql.session.timeZone": "UTC",
    }
    lake = {**CLUSTER, "PINTEREST_LAKE_ROOT": "s3a://bucket/lake", "AWS_ENDPOINT_URL_S3": "http://minio:9000"}
    assert set(spark_config(Settings.from_env(lake))) == {
        "spark.remote", "spark.sql.session.timeZone", "fs.s3a.endpoint", "fs.s3a.path.style.access",
    }


def test_the_connect_servers_heap_is_the_stacks_unless_pinterest_spark_conf_sets_it(tmp_path):
    """infra/stack.sh gives spark-submit SPARK_CONNECT_MEMORY unless the settings hold spark.driver.memory; the
    in-process tuning's 4g never reaches a server, PINTEREST_SPARK_CONF's does (each run's session then finds the
    server has it, instead of failing on a setting it may not change)."""
    assert "spark.driver.memory" not in server_config({})
    conf = tmp_path / "spark-defaults.conf"
    conf.write_text("spark.driver.memory 3g\n")
    assert server_config({"PINTEREST_SPARK_CONF": str(conf)})["spark.driver.memory"] == "3g"


def test_the_local_stack_gets_the_small_machine_tuning_and_a_variable_turns_it_off_or_on():
    local = spark_config(Settings.from_env({"SPARK_REMOTE": LOCAL_SPARK_REMOTE}))
    assert local["spark.sql.shuffle.partitions"] == "2" and local[PER_STEP_CODEGEN] == "true"
    # Only what a session may set: the driver's memory or the UI are the server's.
    assert "spark.driver.memory" not in local and "spark.ui.enabled" not in local
    assert not [key for key in local if key.startswith(("spark.ui.", "spark.sql.ui."))]  # static: the server's
    off = spark_config(Settings.from_env({"SPARK_REMOTE": LOCAL_SPARK_REMOTE, "PINTEREST_SPARK_TUNING": "none"}))
    assert set(off) == {"spark.remote", "spark.sql.session.timeZone"}
    opted_in = spark_config(Settings.from_env({**CLUSTER, "PINTEREST_SPARK_TUNING": "small-machine"}))
    assert opted_in["spark.sql.shuffle.partitions"] == "2"
    with pytest.raises(SettingsError, match="PINTEREST_SPARK_TUNING=fast is not one of small-machine, none"):
        Settings.from_env({"PINTEREST_SPARK_TUNING": "fast"})


def test_an_in_process_driver_binds_to_loopback_and_is_tuned_only_on_a_local_master():
    local = spark_config(Settings.from_env({}))
    assert local["spark.driver.bindAddress"] == "127.0.0.1" and local["spark.sql.shuffle.partitions"] == "2"
    assert local["spark.sql.session.timeZone"] == "UTC"
    # The Connect server's log configuration; C1 only, a JVM of one run, with the code cache C1 alone would shrink
    # to 48 MB kept at its default
    log = f'-Dlog4j2.configurationFile="{REPO_ROOT / "infra/spark/log4j2.properties"}"'
    assert local["spark.driver.extraJavaOptions"] == f"{log} -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"
    on_cluster = spark_config(Settings.from_env({"SPARK_MASTER": "spark://master.internal:7077"}))
    assert on_cluster["spark.master"] == "spark://master.internal:7077"
    assert not set(SMALL_MACHINE_CONFIG) & set(on_cluster) and "spark.driver.bindAddress" not in on_cluster
    assert "spark.driver.extraJavaOptions" not in on_cluster
    assert spark_config(Settings.from_env({}), long_lived=True)["spark.driver.extraJavaOptions"] == log
    assert on_cluster["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    # infra/stack.sh's standalone cluster: its executors are on this machine, so the driver stays on loopback.
    on_local_cluster = spark_config(Settings.from_env({"SPARK_MASTER": "spark://127.0.0.1:7077"}))
    assert on_local_cluster["spark.driver.bindAddress"] == "127.0.0.1"
    assert not set(SMALL_MACHINE_CONFIG) & set(on_local_cluster)
    # A Kubernetes on this machine runs executors in pods, which must reach the driver.
    assert "spark.driver.bindAddress" not in spark_config(Settings.from_env({"SPARK_MASTER": "k8s://https://127.0.0.1:6443"}))


def test_overrides_from_a_spark_defaults_file_come_last_everywhere(tmp_path):
    conf = tmp_path / "spark-defaults.conf"
    conf.write_text("# tuned for the prod cluster\nspark.sql.shuffle.partitions 64\n\n"
                    "spark.sql.adaptive.enabled=false\nspark.executor.memory   8g\n")
    env = {"PINTEREST_SPARK_CONF": str(conf)}
    in_process = spark_config(Settings.from_env(env))
    assert (in_process["spark.sql.shuffle.partitions"], in_process["spark.executor.memory"]) == ("64", "8g")
    remote = spark_config(Settings.from_env({**env, **CLUSTER}))
    assert remote["spark.sql.shuffle.partitions"] == "64" and remote["spark.sql.adaptive.enabled"] == "false"
    assert server_config(env)["spark.sql.shuffle.partitions"] == "64"


def test_a_bad_overrides_file_is_named_with_its_line(tmp_path):
    with pytest.raises(SettingsError, match="PINTEREST_SPARK_CONF=.*missing.conf is not a file"):
        Settings.from_env({"PINTEREST_SPARK_CONF": str(tmp_path / "missing.conf")})
    conf = tmp_path / "spark-defaults.conf"
    conf.write_text("spark.sql.shuffle.partitions 8\nshuffle.partitions=8\n")
    with pytest.raises(SettingsError, match=r"spark-defaults.conf, line 2: 'shuffle.partitions=8' is not a setting"):
        spark_config(Settings.from_env({"PINTEREST_SPARK_CONF": str(conf)}))


def test_the_local_connect_server_is_tuned_for_the_machine_a_cluster_server_is_not():
    local = server_config({})
    assert local["spark.sql.shuffle.partitions"] == "2" and local["spark.driver.bindAddress"] == "127.0.0.1"
    assert local["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    # The server's JVM runs for days: its JIT keeps the optimising compiler (stack.sh gives its Java options),
    # and its record of finished queries stays short.
    assert local["spark.sql.ui.retainedExecutions"] == "50" and local["spark.ui.retainedTasks"] == "1000"
    assert "spark.driver.extraJavaOptions" not in local
    cluster = server_config({"PINTEREST_SPARK_TUNING": "none"})
    assert not set(SMALL_MACHINE_CONFIG) & set(cluster)
    assert cluster["spark.sql.session.timeZone"] == "UTC" and cluster["spark.driver.bindAddress"] == "127.0.0.1"


def test_make_ups_connect_server_on_a_clusters_master_gets_no_tuning_and_a_driver_its_executors_reach():
    # What infra/stack.sh runs for `make up` with SPARK_MASTER exported.
    def server_args(env: dict) -> list[str]:
        done = subprocess.run([sys.executable, "-m", "pinterest_dagster.lib.spark"], capture_output=True, text=True,
                              timeout=120, cwd=REPO_ROOT, env={**os.environ, "PINTEREST_SPARK_TUNING": "", **env})
        assert done.returncode == 0, done.stderr[-1500:]
        return done.stdout.splitlines()[1::2]

    remote = server_args({"SPARK_MASTER": "spark://spark-master.internal:7077"})
    assert not {arg.split("=", 1)[0] for arg in remote} & {*SMALL_MACHINE_CONFIG, "spark.driver.bindAddress"}
    assert "spark.sql.session.timeZone=UTC" in remote
    on_this_machine = server_args({"SPARK_MASTER": "spark://127.0.0.1:7077"})  # stack.sh's cluster: bound to loopback
    assert "spark.driver.bindAddress=127.0.0.1" in on_this_machine and "spark.sql.shuffle.partitions=2" not in on_this_machine
    assert "spark.sql.shuffle.partitions=2" in server_args({"SPARK_MASTER": "local[*]"})
    assert "spark.sql.shuffle.partitions=2" in server_args({"SPARK_MASTER": "spark://spark-master.internal:7077",
                                                            "PINTEREST_SPARK_TUNING": "small-machine"})
    # A run's session on that server: no tuning either, though the server is on 127.0.0.1.
    session = spark_config(Settings.from_env({"SPARK_REMOTE": LOCAL_SPARK_REMOTE,
                                              "SPARK_MASTER": "spark://spark-master.internal:7077"}))
    assert set(session) == {"spark.remote", "spark.sql.session.timeZone"}


def test_the_tests_in_process_jvm_compiles_with_c1_only(spark):
    arguments = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
    assert {"-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=240m"} <= set(arguments)


def test_code_generation_is_chosen_per_step_only_on_a_tuned_session(spark):
    assert spark.conf.get(PER_STEP_CODEGEN) == "true"  # the tests' in-process session is the local stack's
    previous = spark.conf.get("spark.sql.codegen.factoryMode")
    try:
        fit_code_generation(spark, 0)
        assert spark.conf.get("spark.sql.codegen.factoryMode") == "NO_CODEGEN"
        spark.conf.set("spark.sql.codegen.factoryMode", "FALLBACK")
        spark.conf.unset(PER_STEP_CODEGEN)
        fit_code_generation(spark, 0)
        assert spark.conf.get("spark.sql.codegen.factoryMode") == "FALLBACK"
    finally:
        spark.conf.set(PER_STEP_CODEGEN, "true")
        spark.conf.set("spark.sql.codegen.factoryMode", previous)


def test_an_override_reaches_a_runs_spark_connect_session(tmp_path):
    conf = tmp_path / "spark-defaults.conf"
    conf.write_text("spark.sql.shuffle.partitions 7\n")
    settings = Settings.from_env({"SPARK_REMOTE": require_spark_connect(), "PINTEREST_SPARK_CONF": str(conf)})
    assert run_session_settings(settings, ["spark.sql.shuffle.partitions", "spark.sql.session.timeZone"]) == {
        "spark.sql.shuffle.partitions": "7", "spark.sql.session.timeZone": "UTC",
    }


def test_a_server_setting_the_connect_server_already_has_is_not_a_refusal(tmp_path):
    """PINTEREST_SPARK_CONF reaches the Connect servers infra/stack.sh starts and every run's session alike: a
    setting of the server (here `spark.ui.enabled`, `false` on `make up`'s small-machine server) that a session
    cannot set but the server already has opens the session; the session settings of the same file still
    reach it."""
    remote = require_spark_connect()
    ui = run_session_settings(Settings.from_env({"SPARK_REMOTE": remote}), ["spark.ui.enabled"])["spark.ui.enabled"]
    conf = tmp_path / "spark-defaults.conf"
    conf.write_text(f"spark.ui.enabled {ui}\nspark.sql.shuffle.partitions 7\n")
    settings = Settings.from_env({"SPARK_REMOTE": remote, "PINTEREST_SPARK_CONF": str(conf)})
    assert run_session_settings(settings, ["spark.ui.enabled", "spark.sql.shuffle.partitions"]) == {
        "spark.ui.enabled": ui, "spark.sql.shuffle.partitions": "7",
    }


def run_session_error(env: dict) -> str:
    """What opening a run's Spark Connect session (the code location's own resource) raises, in a process of
    its own: the tests' process holds a classic session."""
    script = (
        "from pinterest_dagster.definitions import build_resources\n"
        "from pinterest_dagster.lib.spark import connect_session\n"
        "from pinterest_dagster.settings import Settings\n"
        "resource = build_resources(Settings.from_env())['pyspark']\n"
        "try:\n"
        "    connect_session(resource.spark_config, 60).stop()\n"
        "except Exception as error:\n"
        "    print(f'{type(error).__name__}: {error}')\n"
    )
    return python_in_its_own_process(script, env).strip()


def python_in_its_own_process(script: str, env: dict) -> str:
    """What `script` prints, run by the project's Python with `env` added (the tests' process holds a classic
    session, so a Connect session needs a process of its own)."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, cwd=REPO_ROOT,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr[-1500:]
    return done.stdout


def test_a_runs_session_after_one_a_server_restart_closed_is_new_and_shared():
    """A process whose Connect session a server restart closed (the client closes on SESSION_CHANGED; closed by
    hand here) opens a new one for its next run, and that one is the process's shared session: the IO manager and
    the assets must hand out DataFrames of one session."""
    script = (
        "from pinterest_dagster.definitions import build_resources\n"
        "from pinterest_dagster.lib.spark import connect_session\n"
        "from pinterest_dagster.settings import Settings\n"
        "config = build_resources(Settings.from_env())['pyspark'].spark_config\n"
        "first = connect_session(config, 60)\n"
        "first.client.close()\n"
        "second = connect_session(config, 60)\n"
        "print(second is not first, second.is_stopped, connect_session(config, 60) is second, second.range(3).count())\n"
        "second.stop()\n"
    )
    assert python_in_its_own_process(script, {"SPARK_REMOTE": require_spark_connect()}).split() == ["True", "False", "True", "3"]


def test_a_setting_the_connect_server_refuses_fails_the_session_with_one_sentence_naming_it(tmp_path):
    conf = tmp_path / "spark-defaults.conf"
    conf.write_text("spark.executor.memory 8g\n")  # the server's own, not a session's
    error = run_session_error({"SPARK_REMOTE": require_spark_connect(), "PINTEREST_SPARK_CONF": str(conf)})
    assert error.startswith(f"SparkConfigError: the Spark Connect server at {LOCAL_SPARK_REMOTE} refused "
                            "spark.executor.memory=8g (a setting of the server, not of a session? set it in the "
                            "server's configuration, not in PINTEREST_SPARK_CONF): "), error
    assert "\n" not in error


def test_a_connect_server_without_delta_lake_fails_the_session_with_one_sentence_saying_how_to_start_it():
    port = free_port()
    spark_submit = Path(pyspark.__file__).parent / "bin/spark-submit"
    server = subprocess.Popen(
        [str(spark_submit), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer", "--master", "local[1]",
         "--driver-memory", "512m", "--conf", "spark.ui.enabled=false", "--conf", "spark.driver.bindAddress=127.0.0.1",
         "--conf", "spark.connect.grpc.binding.address=127.0.0.1", "--conf", f"spark.connect.grpc.binding.port={port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**{k: v for k, v in os.environ.items() if k != "SPARK_REMOTE"}, "SPARK_LOCAL_IP": "127.0.0.1"})
    try:
        deadline = time.monotonic() + 120
        while not port_open("127.0.0.1", port):
            assert server.poll() is None and time.monotonic() < deadline, "the bare Spark Connect server did not start"
            time.sleep(0.5)
        error = run_session_error({"SPARK_REMOTE": f"sc://127.0.0.1:{port}"})
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, 15)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
    assert error == (f"SparkConfigError: the Spark Connect server at sc://127.0.0.1:{port} has no Delta Lake: start "
                     "it with the delta-spark jars and --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension "
                     "--conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog"), error


def test_make_up_starts_only_the_services_the_settings_point_at_on_this_machine():
    assert local_services(Settings.from_env({})) == ["kafka", "mariadb", "spark-connect"]
    assert local_services(Settings.from_env({"SPARK_REMOTE": LOCAL_SPARK_REMOTE,
                                             "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"})) == ["kafka", "mariadb", "spark-connect"]
    remote = Settings.from_env({
        **CLUSTER, "KAFKA_BOOTSTRAP_SERVERS": "localhost:9092,b-2.kafka.internal:9092",
        "SOURCE_DB_URL": "mysql+pymysql://pinterest:s3cret@db.internal:3306/pinterest_data",
    })
    assert local_services(remote) == []
    reasons = remote_services(remote)
    assert "s3cret" not in str(reasons) and "db.internal" in reasons["mariadb"]
    assert local_services(Settings.from_env({"SOURCE_DB_URL": "mysql+pymysql://u:p@127.0.0.1:3306/x"}))[1] == "mariadb"


def test_the_spark_connect_client_logs_no_error_it_raises_even_after_dagster_turns_loggers_back_on():
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})  # as Dagster's set-up does
    assert not CONNECT_CLIENT_LOGGER.isEnabledFor(logging.ERROR)
    assert CONNECT_CLIENT_LOGGER is logging.getLogger(connect_logging.__name__)
