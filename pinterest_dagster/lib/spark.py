"""Builds the Spark session from the settings: in-process with the project's jars, or Spark Connect."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from dagster_pyspark import PySparkResource
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pinterest_dagster.lib.s3 import s3_resource, s3a_options
from pinterest_dagster.settings import REPO_ROOT, Settings, SettingsError, master_on_this_machine

# PySpark's Spark Connect client logger is off unless SPARK_CONNECT_LOG_LEVEL gives it a level, but Dagster's
# logging set-up (logging.config.dictConfig) turns every existing logger back on: the client then printed each
# error the server answered, an expected "no table at this path" included, as a JSON line at ERROR before
# raising it (into make demo's output). Errors still reach the caller as exceptions.
CONNECT_CLIENT_LOGGER = logging.getLogger("pyspark.sql.connect.logging")
if CONNECT_CLIENT_LOGGER.level == logging.NOTSET:
    CONNECT_CLIENT_LOGGER.setLevel(logging.CRITICAL)

# Static settings: an in-process session and the Connect servers `infra/stack.sh` starts get them; a remote
# server must have them already (`connect_session` checks).
DELTA_CONFIG = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# What every session needs to compute the contract, wherever it runs: timestamps are UTC (docs/architecture.md section 4).
CORRECTNESS_CONFIG = {"spark.sql.session.timeZone": "UTC"}

# A driver on this machine binds its services to the loopback interface only (never on a cluster, whose
# executors must reach the driver).
LOOPBACK_CONFIG = {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}

# Set on a session whose steps choose compiled or interpreted expressions by their input size
# (`fit_code_generation`): part of the small-machine tuning, never imposed on a cluster.
PER_STEP_CODEGEN = "spark.pinterest.perStepCodeGeneration"

# The driver keeps a record of its finished jobs, stages, tasks and SQL executions for the Spark UI (off here)
# and the status API: the last 1,000 of each by default, 100,000 tasks. A micro-batch makes about 120 SQL
# executions, so on a server that runs for days the record is a constant churn through the old generation.
# Restarted with these, the local Connect server used 18.6, 14.0 and 11.7 CPU-seconds per micro-batch over three
# runs of `benchmarks.streaming latency --rate 333 --seconds 70` against 19.4, 15.0 and 12.7 restarted
# without, its GC 7.0 s against 10.0 s in all, 14 concurrent cycles against 56 (one after the other, 2026-12-06).
# Static: the server's configuration, never a Connect session's (SESSION_CONFIG_PREFIXES leaves `spark.ui.*` out,
# STATIC_SQL_PREFIX `spark.sql.ui.*`).
STATUS_RETENTION_CONFIG = {
    "spark.ui.retainedJobs": "50",
    "spark.ui.retainedStages": "50",
    "spark.ui.retainedTasks": "1000",
    "spark.sql.ui.retainedExecutions": "50",
}

# Small-machine tuning: the local stack moves micro-batches, not terabytes, on 2 cores. Applied to an
# in-process `local[*]` session and the local Connect server (`Settings.small_machine_spark`); a cluster
# keeps its own defaults (PINTEREST_SPARK_TUNING=none, the default for a remote Spark).
SMALL_MACHINE_CONFIG = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "4g",
    "spark.sql.ansi.enabled": "false",
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.databricks.delta.merge.repartitionBeforeWrite.enabled": "false",
    "spark.databricks.delta.optimizeWrite.enabled": "false",
    # Listing a table's files (VACUUM) is a Spark job of this many tasks, 10,000 by default: a VACUUM of a
    # table of ten files took 57-85 s on 2 cores, 1.7 s with 2.
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
    PER_STEP_CODEGEN: "true",
    **STATUS_RETENTION_CONFIG,
}

# An in-process session's JVM lives for one run (a micro-batch without Spark Connect starts its own) or one
# test session, and runs small queries: the JIT's optimising compiler (C2) costs more CPU than it earns
# back in that time. With C1 only, the rule tests ran 23-32% faster (transforms/test_clean.py 212 s
# against 275 s, test_aggregate.py 140 s against 179 s, `pytest FILE` with and without it,
# one after the other, the test suite running beside both).
# C1 only also shrinks the JVM's default code cache from 240 MB to 48 MB, which a run with the S3 jars
# filled ("Out of space in CodeCache for adapters", CI of 2026-12-03 11:52): the cache keeps the default.
# Part of the small-machine tuning of an in-process session only: the local Connect server's JVM runs
# for days, and a cluster's are its own.
IN_PROCESS_JIT_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"

# An in-process driver on a local master logs as the local Connect server does (warnings, less the ones expected on
# a local lake), not with Spark's default profile, which announces itself and the log level in five lines, and
# warns that Hadoop has no native library (`make migrate` printed them). Not on a cluster: its logging is its own.
SPARK_LOG_CONFIG = REPO_ROOT / "infra/spark/log4j2.properties"


def in_process_java_options(settings: Settings, long_lived: bool) -> dict[str, str]:
    """The in-process driver's JVM options: the log configuration on a local master, the JIT's with the
    small-machine tuning (not for a `long_lived` session)."""
    options = []
    if settings.spark_is_local and SPARK_LOG_CONFIG.is_file():
        options.append(f'-Dlog4j2.configurationFile="{SPARK_LOG_CONFIG}"')  # Spark splits the options on spaces
    if settings.small_machine_spark and not long_lived:
        options.append(IN_PROCESS_JIT_OPTIONS)
    return {"spark.driver.extraJavaOptions": " ".join(options)} if options else {}


@contextlib.contextmanager
def local_ip(config: dict[str, str]) -> Iterator[None]:
    """While an in-process session starts its JVM (which inherits this process's environment): a driver bound to
    the loopback interface is told its address (SPARK_LOCAL_IP), instead of looking for the machine's and warning
    that the host name resolves to a loopback address. Only then: a process this one starts later may drive a
    cluster whose executors must reach it."""
    if config.get("spark.driver.bindAddress") != "127.0.0.1" or "SPARK_LOCAL_IP" in os.environ:
        yield
        return
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    try:
        yield
    finally:
        os.environ.pop("SPARK_LOCAL_IP", None)


# Spark generates Java code for the expressions and stages of each query and compiles it (Janino)
# before running it. Over hundreds of thousands of rows that pays for itself; on a micro-batch of a few
# thousand rows the compiling is most of the work. A profile of the Spark Connect server (JFR) during
# streaming runs of 3,000 events put about 40% of its CPU in code generation; evaluating expressions
# interpreted took such a run from 10.4-11.1 s to 6.6 s, while at 1,000,000 events the compiled
# ingestion is faster (13-15 s against 19-25 s). See docs/benchmarks.md, "Performance".
COMPILED_CODE_FROM_ROWS = 100_000


def fit_code_generation(spark, rows: int) -> None:
    """Compile the session's queries when a step reads at least COMPILED_CODE_FROM_ROWS rows, interpret them below.

    A session setting: the steps of a run share a session, so each step that reads data sets it. Only on a
    session of the small-machine tuning (PER_STEP_CODEGEN): `factoryMode` is internal to Spark, and a
    cluster keeps its own.
    """
    if spark.conf.get(PER_STEP_CODEGEN, "false") != "true":
        return
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


# What a Spark Connect client can set on its own session; the rest is the server's configuration, the static
# `spark.sql.ui.*` among it.
SESSION_CONFIG_PREFIXES = ("spark.sql.", "spark.databricks.delta.", "spark.pinterest.")
STATIC_SQL_PREFIX = "spark.sql.ui."


def spark_conf_overrides(settings: Settings) -> dict[str, str]:
    """The settings of PINTEREST_SPARK_CONF, a spark-defaults style file: `key value` or `key=value` a line,
    `#` comments. They are applied last, over the project's own."""
    if not settings.spark_conf_file:
        return {}
    overrides = {}
    for number, line in enumerate(Path(settings.spark_conf_file).read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, value = [*re.split(r"\s*=\s*|\s+", line, maxsplit=1), ""][:2]
        if not key.startswith("spark.") or not value:
            raise SettingsError(
                f"{settings.spark_conf_file}, line {number}: {line!r} is not a setting "
                "('spark.key value' or 'spark.key=value', as in spark-defaults.conf)"
            )
        overrides[key] = value
    return overrides


def tuning_config(settings: Settings) -> dict[str, str]:
    return SMALL_MACHINE_CONFIG if settings.small_machine_spark else {}


def spark_config(settings: Settings, long_lived: bool = False) -> dict[str, str]:
    """The Spark configuration for these settings, as given to dagster-pyspark's resource.

    A remote session (SPARK_REMOTE) receives what correctness needs (UTC, the lake's s3a options), the
    session-level part of the small-machine tuning when that applies, and the PINTEREST_SPARK_CONF
    overrides; nothing else. An S3 lake adds the s3a options of the lake's S3Resource (endpoint, region;
    never credentials). A `long_lived` in-process session (a benchmark's Structured Streaming query) keeps the
    JIT's optimising compiler, as the Connect server does.
    """
    s3a = s3a_options(s3_resource(settings)) if settings.lake_on_s3 else {}
    if settings.spark_remote:
        tuning = {k: v for k, v in tuning_config(settings).items()
                  if k.startswith(SESSION_CONFIG_PREFIXES) and not k.startswith(STATIC_SQL_PREFIX)}
        # A session's settings reach the Hadoop configuration its reads and writes use.
        return {"spark.remote": settings.spark_remote, **CORRECTNESS_CONFIG, **tuning, **s3a,
                **spark_conf_overrides(settings)}
    return {
        "spark.master": settings.spark_master,
        "spark.app.name": "pinterest-data-pipeline",
        "spark.jars": ",".join(spark_jars(settings)),
        **DELTA_CONFIG,
        **CORRECTNESS_CONFIG,
        **(LOOPBACK_CONFIG if settings.spark_is_local else {}),
        **tuning_config(settings),
        **in_process_java_options(settings, long_lived),
        **{f"spark.hadoop.{key}": value for key, value in s3a.items()},
        **spark_conf_overrides(settings),
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
    """A Spark Connect session that fails within about `timeout_s` when the server does not answer, and
    with one sentence when it has no Delta Lake or refuses one of the settings.

    The policy is set before the first call reaches the server: creating the session makes none. The
    process's session is reused: the IO manager's resource and the assets' must hand out DataFrames of
    one session."""
    from pyspark.sql import SparkSession

    remote = config["spark.remote"]
    drop_stopped_connect_sessions()  # one a server restart closed: its replacement must be the shared one
    session = SparkSession.builder.remote(remote).getOrCreate()
    session.client.set_retry_policies([connect_retry_policy(timeout_s)])
    try:
        extensions = session.conf.get("spark.sql.extensions", "") or ""
    except Exception as error:
        raise SparkUnavailableError(
            f"no Spark Connect server answered at {remote} within {timeout_s:g} s "
            f"(PINTEREST_SPARK_CONNECT_TIMEOUT_SECONDS): is it running? `make up` starts the local one; "
            f"SPARK_REMOTE points elsewhere. Last error: {first_line(error)}"
        ) from None
    if DELTA_CONFIG["spark.sql.extensions"] not in extensions:
        raise SparkConfigError(
            f"the Spark Connect server at {remote} has no Delta Lake: start it with the delta-spark jars and "
            + " ".join(f"--conf {key}={value}" for key, value in DELTA_CONFIG.items())
        )
    for key, value in config.items():
        if key == "spark.remote":
            continue
        try:
            session.conf.set(key, value)
        except Exception as error:
            # A setting of the server (PINTEREST_SPARK_CONF also reaches the servers infra/stack.sh starts) that
            # the server already has is not a refusal.
            if server_value(session, key) == value:
                continue
            raise SparkConfigError(
                f"the Spark Connect server at {remote} refused {key}={value} (a setting of the server, not of a "
                f"session? set it in the server's configuration, not in PINTEREST_SPARK_CONF): {first_line(error)}"
            ) from None
    return session


def server_value(session, key: str) -> str | None:
    try:
        return session.conf.get(key, None)
    except Exception:
        return None


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__


class SparkUnavailableError(RuntimeError):
    """The Spark Connect server did not answer within the configured time."""


class SparkConfigError(RuntimeError):
    """The Spark Connect server cannot serve the project as configured (no Delta Lake, a refused setting)."""


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
            with local_ip(self.spark_config):
                super().setup_for_execution(context)

    def teardown_after_execution(self, context) -> None:
        if "spark.remote" in self.spark_config and self._spark_session is not None:
            try:
                self._spark_session.stop()  # releases the session on the server
            except Exception as error:  # the server went away: nothing left to release
                context.log.debug(f"could not release the Spark Connect session: {error}")


def build_spark_session(settings: Settings, long_lived: bool = False):
    """A SparkSession (classic or Connect) configured for the project (`long_lived`: see spark_config)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    config = spark_config(settings, long_lived)
    for key, value in config.items():
        builder = builder.config(key, value)
    if "spark.remote" not in config:
        with local_ip(config):
            return builder.getOrCreate()
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    # A server restarted since this process's session was made (a `make down`/`make up`) answers SESSION_CHANGED
    # and the client closes. PySpark keeps a closed session registered as the default one and then hands out a new,
    # unregistered session on every call: drop it, so that the new one is registered and shared.
    drop_stopped_connect_sessions()
    # This thread's session, or the one another thread made (which getOrCreate hands out too).
    cached = ConnectSession.getActiveSession() or ConnectSession._default_session
    try:
        return builder.getOrCreate()
    except Exception:
        # The restart met by getOrCreate itself (it sets the options on the cached session).
        if cached is None or not cached.is_stopped:
            raise
        drop_stopped_connect_sessions()
        return builder.getOrCreate()


def drop_stopped_connect_sessions() -> None:
    """Unregisters this process's default and active Spark Connect sessions if their client has closed."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    registered = (ConnectSession._default_session, getattr(ConnectSession._active_session, "session", None))
    for session in registered:
        if session is not None and session.is_stopped:
            session.stop()  # nothing to release on the server; unregisters it


# The Connect servers' own settings. Spark keeps an idle session for 60 min by default: a run that died
# before releasing its session (SparkResource does at the end of every run) leaves one behind. Here they go
# after 10 min. (After the history benchmark's drain the server's old generation was 99.7% full,
# `jstat -gcutil`, and the next micro-batches ran 1.5-2x slower in every step; whether idle sessions were the
# cause is not measured yet.)
CONNECT_SERVER_CONFIG = {"spark.connect.session.manager.defaultSessionTimeout": "10m"}


def connect_server_args(settings: Settings) -> list[str]:
    """`--conf` arguments for a Spark Connect server `infra/stack.sh` starts (jars are added there): Delta,
    UTC, the loopback binding, the tuning of `settings` and its PINTEREST_SPARK_CONF overrides."""
    loopback = LOOPBACK_CONFIG if master_on_this_machine(settings.spark_master) else {}
    overrides = spark_conf_overrides(settings)
    config = {**DELTA_CONFIG, **CORRECTNESS_CONFIG, **loopback, **tuning_config(settings), **CONNECT_SERVER_CONFIG}
    # The server's heap is SPARK_CONNECT_MEMORY (infra/stack.sh gives it to spark-submit), not the in-process
    # tuning's, unless PINTEREST_SPARK_CONF sets spark.driver.memory: then that, and stack.sh leaves its own out.
    # Every session of a run sets the file's settings too, and one the server refuses but already has is skipped.
    config.pop("spark.driver.memory", None)
    config.update(overrides)
    return [arg for key, value in config.items() for arg in ("--conf", f"{key}={value}")]


if __name__ == "__main__":  # infra/stack.sh: SPARK_MASTER=... [PINTEREST_SPARK_TUNING=...] python -m pinterest_dagster.lib.spark
    # The server is started for the local stack: its own address is not where the settings point. Its master
    # (SPARK_MASTER, `local[*]` by default) decides the tuning, unless PINTEREST_SPARK_TUNING does.
    print("\n".join(connect_server_args(replace(Settings.from_env(), spark_remote=None))))
