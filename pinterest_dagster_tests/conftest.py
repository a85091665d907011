"""Fixtures shared by the whole suite: one Spark session per test process, and isolated pipelines."""

from __future__ import annotations

import pytest

from emulator.cli import main as emulator_main
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import Settings
from pinterest_dagster_tests.pipeline import Pipeline, make_pipeline


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
