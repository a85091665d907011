"""Builds the Spark session from the settings: in-process with the project's jars, or Spark Connect."""

from __future__ import annotations

import functools
from pathlib import Path

from dagster_pyspark import PySparkResource
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pinterest_dagster.lib.s3 import s3_resource, s3a_options
from pinterest_dagster.settings import Settings

DELTA_CONFIG = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# Small-machine defaults: the pipeline moves micro-batches, not terabytes, per run.
LOCAL_CONFIG = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # Bind the driver's services to the loopback interface only.
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.memory": "4g",
    "spark.sql.ansi.enabled": "false",
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.databricks.delta.merge.repartitionBeforeWrite.enabled": "false",
    "spark.databricks.delta.optimizeWrite.enabled": "false",
    # Listing a table's files (VACUUM) is a Spark job of this many tasks, 10,000 by default: a VACUUM of a
    # table of ten files took 57-85 s on 2 cores, 1.7 s with 2.
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
}


# Spark generates Java code for the expressions and stages of each query and compiles it (Janino)
# before running it. Over hundreds of thousands of rows that pays for itself; on a micro-batch of a few
# thousand rows the compiling is most of the work. A profile of the Spark Connect server (JFR) during
# streaming runs of 3,000 events put about 40% of its CPU in code generation; evaluating expressions
# interpreted took such a run from 10.4-11.1 s to 6.6 s, while at 1,000,000 events the compiled
# ingestion is faster (13-15 s against 19-25 s). See README, "Performance".
COMPILED_CODE_FROM_ROWS = 100_000


def fit_code_generation(spark, rows: int) -> None:
    """Compile the session's queries when a step reads at least COMPILED_CODE_FROM_ROWS rows, interpret them below.

    A session setting: the steps of a run share a session, so each step that reads data sets it.
    """
    mode = "FALLBACK" if rows >= COMPILED_CODE_FROM_ROWS else "NO_CODEGEN"  # FALLBACK is Spark's default
    spark.conf.set("spark.sql.codegen.factoryMode", mode)


def fit_code_generation_to(tables: list[DataFrame]) -> None:
    """fit_code_generation for a step that reads these whole Delta tables, counted in one query (a count
    of a Delta table is answered from its log: no data is read)."""
    counts = functools.reduce(DataFrame.unionAll, [table.select(F.count(F.lit(1)).alias("rows")) for table in tables])
    fit_code_generation(tables[0].sparkSession, counts.agg(F.sum("rows")).first()[0] or 0)


class MissingJarsError(RuntimeError):
    pass


def spark_jars(settings: Settings) -> list[str]:
    """Jars for an in-process session: Delta and Spark's Kafka source, plus S3 support for s3a lakes."""
    groups = ["spark"] + (["s3"] if settings.lake_on_s3 else [])
    jars: list[str] = []
    for group in groups:
        folder = Path(settings.jars_dir) / group
        found = sorted(str(p) for p in folder.glob("*.jar"))
        if not found:
            raise MissingJarsError(
                f"no Spark jars in {folder}: run `make jars` (Maven copies them from infra/pom.xml)"
            )
        jars += found
    return jars


# Session-level settings a Spark Connect client applies to its own session on the server.
SESSION_CONFIG_PREFIXES = ("spark.sql.", "spark.databricks.delta.")


def spark_config(settings: Settings) -> dict[str, str]:
    """The Spark configuration for these settings, as given to dagster-pyspark's resource.

    An S3 lake adds the s3a options of the lake's S3Resource (endpoint, region; never credentials).
    """
    s3a = s3a_options(s3_resource(settings)) if settings.lake_on_s3 else {}
    if settings.spark_remote:
        session = {k: v for k, v in LOCAL_CONFIG.items() if k.startswith(SESSION_CONFIG_PREFIXES)}
        # A session's settings reach the Hadoop configuration its reads and writes use.
        return {"spark.remote": settings.spark_remote, **session, **s3a}
    return {
        "spark.master": settings.spark_master,
        "spark.app.name": "pinterest-data-pipeline",
        "spark.jars": ",".join(spark_jars(settings)),
        **DELTA_CONFIG,
        **LOCAL_CONFIG,
        **{f"spark.hadoop.{key}": value for key, value in s3a.items()},
    }


def connect_retry_policy(timeout_s: float):
    """Spark Connect's own retry policy (waits growing fourfold from 50 ms), capped at 5 s a wait and given
    as many retries as fit in `timeout_s`. The client's default keeps trying for over 10 min: a run
    that cannot reach the server hung for the whole of a 10 min outage."""
    from pyspark.sql.connect.client.retries import DefaultPolicy

    waits, retries, max_wait_ms = 0.0, 0, 5_000
    while waits < timeout_s * 1000:
        waits += min(50 * 4 ** retries, max_wait_ms)
        retries += 1
    return DefaultPolicy(max_retries=retries, max_backoff=max_wait_ms)


def connect_session(config: dict[str, str], timeout_s: float):
    """A Spark Connect session that fails within about `timeout_s` when the server does not answer.

    The policy is set before the first call reaches the server: creating the session makes none, and
    applying the settings is the first. The process's session is reused: the IO manager's resource and
    the assets' must hand out DataFrames of one session."""
    from pyspark.sql import SparkSession

    session = SparkSession.builder.remote(config["spark.remote"]).getOrCreate()
    session.client.set_retry_policies([connect_retry_policy(timeout_s)])
    try:
        for key, value in config.items():
            if key != "spark.remote":
                session.conf.set(key, value)
    except Exception as error:
        raise SparkUnavailableError(
            f"no Spark Connect server answered at {config['spark.remote']} within {timeout_s:g} s "
            f"(PINTEREST_SPARK_CONNECT_TIMEOUT_SECONDS): is it running? `make up` starts the local one; "
            f"SPARK_REMOTE points elsewhere. Last error: {str(error).strip().splitlines()[0][:200]}"
        ) from None
    return session


class SparkUnavailableError(RuntimeError):
    """The Spark Connect server did not answer within the configured time."""


class SparkResource(PySparkResource):
    """dagster-pyspark's resource, with two things a run on Spark Connect needs.

    - Bounded waits: a run that cannot reach the server fails after `connect_timeout_s` (then the
      instance's run retries take over) instead of waiting out the whole outage.
    - A session per run, released when the run ends: the server keeps an idle session for an hour
      otherwise, hundreds of them at a micro-batch every few seconds.
    """

    connect_timeout_s: float = 120

    def setup_for_execution(self, context) -> None:
        if "spark.remote" in self.spark_config:
            self._spark_session = connect_session(self.spark_config, self.connect_timeout_s)
        else:
            super().setup_for_execution(context)

    def teardown_after_execution(self, context) -> None:
        if "spark.remote" in self.spark_config and self._spark_session is not None:
            try:
                self._spark_session.stop()  # releases the session on the server
            except Exception as error:  # the server went away: nothing left to release
                context.log.debug(f"could not release the Spark Connect session: {error}")


def build_spark_session(settings: Settings):
    """A SparkSession (classic or Connect) configured for the project."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in spark_config(settings).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


# The local Connect server's own settings. Every run opens a session there and none closes it (dagster-pyspark's
# resource has no teardown), and Spark keeps an idle session for 60 min by default: hundreds of them at a run
# every few seconds. Here they go after 10 min. (After the history benchmark's drain the server's old
# generation was 99.7% full, `jstat -gcutil`, and the next micro-batches ran 1.5-2x slower in every step;
# whether idle sessions were the cause is not measured yet.)
CONNECT_SERVER_CONFIG = {"spark.connect.session.manager.defaultSessionTimeout": "10m"}


def connect_server_args() -> list[str]:
    """`--conf` arguments for the Spark Connect server `infra/stack.sh` starts (jars are added there)."""
    config = {**DELTA_CONFIG, **LOCAL_CONFIG, **CONNECT_SERVER_CONFIG}
    config.pop("spark.driver.memory")  # the server's memory is SPARK_CONNECT_MEMORY, given to spark-submit
    return [arg for key, value in config.items() for arg in ("--conf", f"{key}={value}")]


if __name__ == "__main__":  # infra/stack.sh: python -m pinterest_dagster.lib.spark
    print("\n".join(connect_server_args()))
