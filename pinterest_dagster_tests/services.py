"""Access to the real local services: Kafka and MariaDB that `make test` starts, PostgreSQL that the
tests start themselves; with clear failures."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import psycopg2
import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from pinterest_dagster.lib.kafka import client_config
from pinterest_dagster.settings import LOCAL_DIR, REPO_ROOT, KafkaSecurity, Secret, Settings

MYSQL_PASSWORD_FILE = LOCAL_DIR / "secrets" / "mysql_password"
PG_PASSWORD_FILE = LOCAL_DIR / "secrets" / "postgres_password"
# The SASL listeners, user and CA of the local broker (infra/stack.sh; the same variables move its ports).
KAFKA_SASL_PORT = int(os.environ.get("LOCAL_KAFKA_SASL_PORT") or 9094)
KAFKA_SASL_SSL_PORT = int(os.environ.get("LOCAL_KAFKA_SASL_SSL_PORT") or 9095)
KAFKA_USER = "pinterest"
KAFKA_PASSWORD_FILE = LOCAL_DIR / "secrets" / "kafka_password"
KAFKA_CA_FILE = LOCAL_DIR / "kafka" / "tls" / "ca.pem"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def run_module(module: str, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` from the repository, as a user runs it, with `env` added to this environment."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def require_kafka(settings: Settings) -> None:
    host, _, port = settings.kafka_bootstrap_servers.split(",")[0].rpartition(":")
    if not port_open(host or "localhost", int(port)):
        pytest.fail(f"Kafka is not running at {settings.kafka_bootstrap_servers}: start it with `make up`")


def secure_kafka_env(protocol: str, mechanism: str, password: str | None = None) -> dict[str, str]:
    """The environment of a client of the local broker's SASL_PLAINTEXT or SASL_SSL listener."""
    port = KAFKA_SASL_SSL_PORT if protocol == "SASL_SSL" else KAFKA_SASL_PORT
    if not port_open("127.0.0.1", port) or not KAFKA_PASSWORD_FILE.exists():
        pytest.fail(f"the local Kafka broker has no {protocol} listener on 127.0.0.1:{port}: start it with `make up`")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "KAFKA_SECURITY_PROTOCOL": protocol,
        "KAFKA_SASL_MECHANISM": mechanism,
        "KAFKA_SASL_USERNAME": KAFKA_USER,
        "KAFKA_SASL_PASSWORD": password or KAFKA_PASSWORD_FILE.read_text().strip(),
    }
    return {**env, "KAFKA_SSL_CAFILE": str(KAFKA_CA_FILE)} if protocol == "SASL_SSL" else env


def secure_kafka_settings(protocol: str, mechanism: str, password: str | None = None) -> Settings:
    """Isolated settings (own topics) for the local broker's SASL listener."""
    env = secure_kafka_env(protocol, mechanism, password)
    # The password comes from this dict, not os.environ: a resource must take its value, not a dg.EnvVar.
    security = replace(KafkaSecurity.from_env(env), sasl_password=Secret(env["KAFKA_SASL_PASSWORD"]))
    return isolated_settings(kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], kafka_security=security)


# A cron no test or benchmark meets (January 1st, 03:00 UTC): for the schedules a daemon of theirs must not run.
CRON_OF_NO_RUN = "0 3 1 1 *"
# The scheduled jobs (daily batch, maintenance, housekeeping) moved to CRON_OF_NO_RUN: for a daemon whose micro-batches
# are timed or counted, which those jobs would take turns with.
NO_SCHEDULED_JOBS = {f"PINTEREST_{job}_CRON": CRON_OF_NO_RUN for job in ("BATCH", "MAINTENANCE", "HOUSEKEEPING")}
LOCAL_SPARK_REMOTE = "sc://127.0.0.1:15002"  # the Spark Connect server `make up` starts


def require_spark_connect(remote: str = LOCAL_SPARK_REMOTE) -> str:
    host, _, port = remote.removeprefix("sc://").partition("/")[0].rpartition(":")
    if not port_open(host, int(port)):
        pytest.fail(f"no Spark Connect server at {remote}: start it with `make up`")
    return remote


SPARK_CLUSTER_REMOTE = "sc://127.0.0.1:15003"  # the Connect server of `infra/stack.sh up spark-cluster`
SPARK_MASTER_STATUS = "http://127.0.0.1:8080/json/"


@contextmanager
def spark_cluster() -> Iterator[str]:
    """A Spark standalone master, two workers and a Spark Connect server on them (infra/stack.sh), stopped
    afterwards; yields the server's SPARK_REMOTE. Started with SPARK_REMOTE exported, as a user pointing
    the project at it would have it: the server must start all the same."""
    stack = ["bash", str(REPO_ROOT / "infra/stack.sh")]
    started = subprocess.run([*stack, "up", "spark-cluster"], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "SPARK_REMOTE": SPARK_CLUSTER_REMOTE})
    assert started.returncode == 0, f"infra/stack.sh up spark-cluster failed:\n{started.stdout}{started.stderr}"
    try:
        yield SPARK_CLUSTER_REMOTE
    finally:
        subprocess.run([*stack, "down", "spark-cluster"], capture_output=True, timeout=120)


def restart_spark_cluster_connect() -> None:
    """Stop the cluster's Spark Connect server and start it again (infra/stack.sh starts what is down)."""
    pid = int((LOCAL_DIR / "run/spark-cluster-connect.pid").read_text())
    os.kill(pid, 15)
    # Until it has exited: stack.sh leaves a server it finds alive as it is.
    wait_for(lambda: process_gone(pid), 60, f"the cluster's Spark Connect server (pid {pid}) to stop", poll_s=0.2)
    started = subprocess.run(["bash", str(REPO_ROOT / "infra/stack.sh"), "up", "spark-cluster"], capture_output=True,
                             text=True, timeout=300)
    assert started.returncode == 0, f"infra/stack.sh up spark-cluster failed:\n{started.stdout}{started.stderr}"


def spark_cluster_executors(app_name: str = "pinterest-spark-cluster-connect") -> dict[str, int]:
    """Executors of the application `app_name` on each worker, as the workers themselves list them
    (each worker's JSON status), by worker address."""
    status = json.load(urllib.request.urlopen(SPARK_MASTER_STATUS, timeout=10))
    app_ids = {app["id"] for app in status["activeapps"] if app["name"] == app_name}
    executors = {}
    for worker in status["workers"]:
        if worker["state"] == "ALIVE":
            listed = json.load(urllib.request.urlopen(f"{worker['webuiaddress']}/json/", timeout=10))["executors"]
            executors[worker["webuiaddress"]] = sum(1 for executor in listed if executor["appid"] in app_ids)
    return executors


def run_session_settings(settings: Settings, keys: list[str], env: dict | None = None) -> dict[str, str | None]:
    """The values of `keys` in the Spark Connect session a run of `settings` opens (the code location's
    own resource), read in a process of its own: the tests' process holds a classic session."""
    script = (
        "import json, sys\n"
        "from pinterest_dagster.definitions import build_resources\n"
        "from pinterest_dagster.settings import Settings\n"
        "from pinterest_dagster.lib.spark import connect_session\n"
        "resource = build_resources(Settings.from_env())['pyspark']\n"
        "session = connect_session(resource.spark_config, resource.connect_timeout_s)\n"
        "print(json.dumps({key: session.conf.get(key, None) for key in sys.argv[1:]}))\n"
        "session.stop()\n"
    )
    variables = {"SPARK_REMOTE": settings.spark_remote, "PINTEREST_SPARK_TUNING": settings.spark_tuning or "",
                 "PINTEREST_SPARK_CONF": settings.spark_conf_file or "", "PINTEREST_LAKE_ROOT": settings.lake_root,
                 **(env or {})}
    done = subprocess.run([str(REPO_ROOT / ".venv/bin/python"), "-c", script, *keys], capture_output=True, text=True,
                          timeout=180, cwd=REPO_ROOT, env={**os.environ, **variables})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# The topic prefixes the tests of this session used: their topics are deleted when the session passes.
TEST_TOPIC_PREFIXES: list[str] = []


def definitions_repository_origin():
    """The origin of the project's repository as a code server loads it: instigator states stored under it are the
    project's sensors' and schedules'."""
    from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin, RemoteRepositoryOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    return RemoteRepositoryOrigin(ManagedGrpcPythonEnvCodeLocationOrigin(LoadableTargetOrigin(
        executable_path=sys.executable, module_name="pinterest_dagster.definitions", attribute="defs")), "__repository__")


def isolated_settings(**overrides) -> Settings:
    """Settings whose topics no other test uses, so each test sees only its own events."""
    base = Settings.from_env()
    values = {**base.__dict__, "topic_prefix": f"test-{uuid.uuid4().hex[:10]}", **overrides}
    TEST_TOPIC_PREFIXES.append(values["topic_prefix"])
    return Settings(**values)


def delete_test_topics() -> int:
    """Delete the topics of TEST_TOPIC_PREFIXES from the local broker; returns how many.

    A broker that keeps the topics of every test session grows by hundreds of partitions a run, and
    with some 1,800 of them a producer sending as fast as it could had batches expire here.
    """
    prefixes = tuple(f"{prefix}." for prefix in TEST_TOPIC_PREFIXES)
    if not prefixes:
        return 0
    try:
        admin = KafkaAdminClient(**client_config(Settings.from_env()))
    except KafkaError:  # no broker left to clean (a test stopped it, or it never ran)
        return 0
    try:
        topics = [topic for topic in admin.list_topics() if topic.startswith(prefixes)]
        for start in range(0, len(topics), 100):
            admin.delete_topics(topics[start:start + 100], timeout_ms=60_000)
        return len(topics)
    finally:
        admin.close()


def mysql_url(database: str = "pinterest_data") -> str:
    """The URL of the local MariaDB (password generated by infra/stack.sh), or skip/fail without it."""
    installed = shutil.which("mariadbd") or os.path.exists("/usr/sbin/mariadbd")
    if not installed:
        skip_or_fail_without("MariaDB is not installed (apt-get install mariadb-server)")
    if not port_open("127.0.0.1", 3306) or not MYSQL_PASSWORD_FILE.exists():
        pytest.fail("MariaDB is installed but not running on 127.0.0.1:3306: start it with `make up`")
    password = MYSQL_PASSWORD_FILE.read_text().strip()
    return f"mysql+pymysql://pinterest:{password}@127.0.0.1:3306/{database}"


def skip_or_fail_without(reason: str) -> None:
    """Skip on a developer's machine; in CI a missing service is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run these tests")
    pytest.skip(reason)


def start_postgres() -> dict[str, str]:
    """The DAGSTER_PG_* variables of the local PostgreSQL (infra/stack.sh), started if it is not running:
    about 0.4 s, 2.5 s the first time, so only the tests that need it pay for it."""
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb") and not shutil.which("initdb"):
        skip_or_fail_without("PostgreSQL is not installed (apt-get install postgresql)")
    started = subprocess.run(["bash", str(REPO_ROOT / "infra/stack.sh"), "up", "postgres"], capture_output=True, text=True)
    assert started.returncode == 0, f"infra/stack.sh up postgres failed:\n{started.stdout}{started.stderr}"
    return {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": os.environ.get("DAGSTER_PG_PORT") or "5432",
        "DAGSTER_PG_USER": "dagster",
        "DAGSTER_PG_PASSWORD": PG_PASSWORD_FILE.read_text().strip(),
        "DAGSTER_PG_DB": "dagster",
    }


def run_postgres_statement(env: dict[str, str], statement: str) -> None:
    connection = psycopg2.connect(
        host=env["DAGSTER_PG_HOST"], port=env["DAGSTER_PG_PORT"], user=env["DAGSTER_PG_USER"],
        password=env["DAGSTER_PG_PASSWORD"], dbname=env["DAGSTER_PG_DB"],
    )
    connection.autocommit = True  # CREATE and DROP DATABASE cannot run inside a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


@contextmanager
def temporary_postgres_database() -> Iterator[dict[str, str]]:
    """A fresh database on the local PostgreSQL, dropped afterwards; yields the DAGSTER_PG_* variables
    that point an instance of infra/dagster/dagster-postgres.yaml at it."""
    server = start_postgres()
    name = f"dagster_test_{uuid.uuid4().hex[:10]}"
    run_postgres_statement(server, f"CREATE DATABASE {name}")
    try:
        yield {**server, "DAGSTER_PG_DB": name}
    finally:
        # FORCE: a run process that outlived its daemon may still hold a connection.
        run_postgres_statement(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
