"""Fixtures shared by the whole suite: one Spark session per test process, isolated pipelines, and a
temporary Dagster database on PostgreSQL."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from emulator.cli import main as emulator_main
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import REPO_ROOT, Settings
from pinterest_dagster_tests.pipeline import Pipeline, make_pipeline
from pinterest_dagster_tests.services import delete_test_topics, spark_cluster as start_spark_cluster
from pinterest_dagster_tests.services import temporary_postgres_database


@pytest.fixture(scope="session", autouse=True)
def test_topics_deleted(request):
    """The session's own topics are deleted once it passed; a failed session leaves them to look at."""
    yield
    if request.session.testsfailed == 0:
        deleted = delete_test_topics()
        if deleted:
            print(f"\ndeleted the {deleted} Kafka topics of this test session")


@pytest.fixture(scope="session")
def spark():
    """An in-process Spark session with the project's jars (Delta, Kafka source)."""
    session = build_spark_session(Settings.from_env())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def pipeline(spark, tmp_path_factory, source_url) -> Pipeline:
    """A pipeline per test module whose runs use an in-process Spark session."""
    return make_pipeline(tmp_path_factory, source_url, spark_remote=None)


@pytest.fixture(scope="module")
def source_url(tmp_path_factory) -> str:
    """A seeded SQLite source database (800 rows per table) for the module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('source') / 'source.db'}"
    assert emulator_main(["seed", "--rows", "800", "--seed", "3", "--db-url", url]) == 0
    return url


@pytest.fixture(scope="module")
def dagster_pg_env():
    """DAGSTER_PG_* variables of a database of the module's own on the local PostgreSQL, also set in
    this process: an instance of infra/dagster/dagster-postgres.yaml reads them when it loads."""
    with temporary_postgres_database() as env, pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


@pytest.fixture
def postgres_instance(dagster_pg_env, tmp_path):
    """An instance of infra/dagster/dagster-postgres.yaml on the module's database."""
    shutil.copy(REPO_ROOT / "infra/dagster/dagster-postgres.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


@pytest.fixture(params=["sqlite", "postgres"])
def instance(request):
    """A test instance on SQLite files, or the project's PostgreSQL instance (postgres_instance): the two sort
    and store some things differently (runs without a start time, for one)."""
    if request.param == "postgres":
        yield request.getfixturevalue("postgres_instance")
        return
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture(scope="module")
def spark_cluster():
    """A Spark standalone cluster of two workers with a Spark Connect server on it, for the module; yields
    the server's SPARK_REMOTE."""
    with start_spark_cluster() as remote:
        yield remote
