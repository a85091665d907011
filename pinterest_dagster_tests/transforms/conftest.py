"""Fixtures and Hypothesis settings for the rule tests on tiny DataFrames."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from pinterest_dagster.lib.spark import COMPILED_CODE_FROM_ROWS, fit_code_generation

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


@pytest.fixture(autouse=True, params=["compiled", "interpreted"])
def code_generation(spark, request):
    """Runs every rule test with Spark's generated code and with interpreted expressions: streaming runs
    of small micro-batches interpret (lib/spark.py, fit_code_generation), large ones compile."""
    previous = spark.conf.get("spark.sql.codegen.factoryMode")
    fit_code_generation(spark, COMPILED_CODE_FROM_ROWS if request.param == "compiled" else 0)
    yield request.param
    spark.conf.set("spark.sql.codegen.factoryMode", previous)
