"""The Dagster code location: every asset, check, job, schedule, sensor and resource, assembled here."""

import dagster as dg
from dagster_pyspark import PySparkResource

from pinterest_dagster.lib.spark import spark_config
from pinterest_dagster.settings import Settings

settings = Settings.from_env()

defs = dg.Definitions(
    resources={
        "pyspark": PySparkResource(spark_config=spark_config(settings)),
    },
)
