"""Fixtures shared by the whole suite: one Spark session per test process."""

from __future__ import annotations

import pytest

from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import Settings


@pytest.fixture(scope="session")
def spark():
    """An in-process Spark session with the project's jars (Delta, Kafka source)."""
    session = build_spark_session(Settings.from_env())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
