"""Fixtures and Hypothesis settings for the rule tests on tiny DataFrames."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

# One Spark job per example is slow: few examples, each a batch of many values.
settings.register_profile(
    "spark",
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("spark")


@pytest.fixture(params=[False, True], ids=["ansi-off", "ansi-on"])
def ansi(spark, request):
    """Runs the test with Spark's ANSI mode off and on: bad input must never raise in either."""
    previous = spark.conf.get("spark.sql.ansi.enabled")
    spark.conf.set("spark.sql.ansi.enabled", str(request.param).lower())
    yield request.param
    spark.conf.set("spark.sql.ansi.enabled", previous)
