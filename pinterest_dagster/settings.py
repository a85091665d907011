"""The one place that reads the environment (docs/architecture.md section 6).

Everything else receives a `Settings` object, so a test or a deployment changes behaviour by
building a different `Settings`, never by patching globals.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = REPO_ROOT / ".local"
TOPIC_KINDS = ("pin", "geo", "user")

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SASL_MECHANISMS = (*PASSWORD_MECHANISMS, "AWS_MSK_IAM")
# PINTEREST_SPARK_TUNING: the small-machine settings of the local stack (lib/spark.py), or none (a cluster).
SPARK_TUNINGS = ("small-machine", "none")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
# Both need code, not a variable: a token provider object (kafka-python) and a login callback class (Java).
UNSUPPORTED_SASL_MECHANISMS = ("OAUTHBEARER", "GSSAPI")


class SettingsError(ValueError):
    """Settings that cannot work together; the message names the environment variables to change."""


@dataclass(frozen=True)
class Secret:
    """A password: `repr` and `str` never show it, so no log line, f-string or traceback prints it.

    `env_var` names the variable it was read from, so a Dagster resource can take it as `dg.EnvVar`
    and the UI shows that name instead of the value.
    """

    value: str = field(repr=False)
    env_var: str | None = None

    def __str__(self) -> str:
        return "***"


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client (emulator, sensor, Spark's Kafka source) authenticates and checks the broker."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_cafile: str | None = None

    def __post_init__(self) -> None:
        error = _protocol_error(self) or _sasl_error(self) or _tls_error(self)
        if error:
            raise SettingsError(error)

    @classmethod
    def from_env(cls, env) -> "KafkaSecurity":
        password = env.get("KAFKA_SASL_PASSWORD")
        return cls(
            protocol=(env.get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").strip().upper(),
            sasl_mechanism=(env.get("KAFKA_SASL_MECHANISM") or "").strip().upper() or None,
            sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
            sasl_password=Secret(password, "KAFKA_SASL_PASSWORD") if password else None,
            ssl_cafile=env.get("KAFKA_SSL_CAFILE") or None,
        )

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_password(self) -> bool:
        return self.sasl_mechanism in PASSWORD_MECHANISMS


def _protocol_error(security: KafkaSecurity) -> str | None:
    if security.protocol not in SECURITY_PROTOCOLS:
        return f"KAFKA_SECURITY_PROTOCOL={security.protocol} is not one of {', '.join(SECURITY_PROTOCOLS)}"
    if security.uses_sasl and not security.sasl_mechanism:
        return f"KAFKA_SECURITY_PROTOCOL={security.protocol} needs KAFKA_SASL_MECHANISM ({', '.join(SASL_MECHANISMS)})"
    if security.sasl_mechanism and not security.uses_sasl:
        return (
            f"KAFKA_SASL_MECHANISM={security.sasl_mechanism} needs KAFKA_SECURITY_PROTOCOL=SASL_SSL "
            f"(or SASL_PLAINTEXT), not {security.protocol}"
        )
    return None


def _sasl_error(security: KafkaSecurity) -> str | None:
    mechanism = security.sasl_mechanism
    if mechanism in UNSUPPORTED_SASL_MECHANISMS:
        return f"KAFKA_SASL_MECHANISM={mechanism} is not supported (docs/configuration.md, 'Secure Kafka / MSK')"
    if mechanism and mechanism not in SASL_MECHANISMS:
        return f"KAFKA_SASL_MECHANISM={mechanism} is not one of {', '.join(SASL_MECHANISMS)}"
    if security.uses_password and not (security.sasl_username and security.sasl_password):
        return f"KAFKA_SASL_MECHANISM={mechanism} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
    if not security.uses_password and (security.sasl_username or security.sasl_password):
        # Credentials that would be silently ignored usually mean a forgotten mechanism.
        return (
            f"KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD are set but KAFKA_SASL_MECHANISM={mechanism or '(unset)'} "
            f"does not use them; they need one of {', '.join(PASSWORD_MECHANISMS)}"
        )
    if mechanism == "AWS_MSK_IAM" and security.protocol != "SASL_SSL":
        return "KAFKA_SASL_MECHANISM=AWS_MSK_IAM needs KAFKA_SECURITY_PROTOCOL=SASL_SSL"
    return None


def _tls_error(security: KafkaSecurity) -> str | None:
    if not security.ssl_cafile:
        return None
    if not security.uses_tls:
        return f"KAFKA_SSL_CAFILE is set but KAFKA_SECURITY_PROTOCOL={security.protocol} does not use TLS (SSL or SASL_SSL)"
    if not Path(security.ssl_cafile).is_file():
        return f"KAFKA_SSL_CAFILE={security.ssl_cafile} is not a file (a PEM file of the CA certificates to trust)"
    return None


def _whole_number(env, name: str) -> int | None:
    text = (env.get(name) or "").strip()
    if not text:
        return None
    if not re.fullmatch(r"[0-9]+", text):  # int() would also take "+3", "3_0" and other scripts' digits
        raise SettingsError(f"{name}={text} is not a whole number")
    return int(text)


@dataclass(frozen=True, repr=False)
class Settings:
    lake_root: str = str(LOCAL_DIR / "lake")
    kafka_bootstrap_servers: str = "localhost:9092"
    topic_prefix: str = "pinterest"
    # Copies of each topic the project creates; None: 3, or fewer when the cluster lists fewer brokers (lib/kafka.py).
    topic_replication: int | None = None
    source_db_url: str = f"sqlite:///{LOCAL_DIR / 'pinterest.db'}"
    spark_remote: str | None = None
    spark_master: str = "local[*]"
    # A run on Spark Connect fails after this long without an answer from the server, and is retried.
    spark_connect_timeout_s: int = 120
    jars_dir: Path = field(default=LOCAL_DIR / "jars")
    # None: small-machine when Spark runs on this machine in local mode (`small_machine_spark`), none on a cluster.
    spark_tuning: str | None = None
    spark_conf_file: str | None = None  # spark-defaults style overrides, applied last (lib/spark.py)
    max_records_per_run: int = 1_000_000
    batch_cron: str = "0 0 * * *"  # when daily_batch_schedule runs batch_job (UTC)
    maintenance_cron: str = "47 * * * *"  # when maintenance_schedule compacts and vacuums the tables (UTC)
    vacuum_retain_hours: float = 168.0  # files a compaction or overwrite replaced are kept this long
    freshness_minutes: float = 15.0  # cleaned/pin and the realtime tables are stale after this long without a merge
    housekeeping_cron: str = "17 * * * *"  # when housekeeping_schedule deletes old successful micro-batch runs (UTC)
    keep_successful_runs_hours: float = 24.0  # successful micro-batch runs are kept this long
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    s3_endpoint_url: str | None = None  # an S3-compatible server (MinIO, moto); unset = AWS S3
    aws_region: str | None = None

    def __post_init__(self) -> None:
        if self.lake_root.startswith(("s3://", "s3n://")):
            raise SettingsError(
                f"PINTEREST_LAKE_ROOT={self.lake_root} uses a scheme Spark's hadoop-aws does not serve: "
                f"write s3a://{self.lake_root.split('://', 1)[1]}"
            )
        if ":" not in self.lake_root and not Path(self.lake_root).is_absolute():
            # Delta SQL names a table by path only when the path is absolute (delta.`/abs/path`), and a
            # Spark Connect server resolves a relative one against its own working directory: both would
            # silently miss the tables this process means, so a local root is made absolute here.
            object.__setattr__(self, "lake_root", str(Path(self.lake_root).expanduser().resolve()))
        if self.topic_replication is not None and self.topic_replication < 1:
            raise SettingsError(f"PINTEREST_TOPIC_REPLICATION={self.topic_replication}: a topic needs at least 1 copy")
        if self.spark_tuning not in (None, *SPARK_TUNINGS):
            raise SettingsError(f"PINTEREST_SPARK_TUNING={self.spark_tuning} is not one of {', '.join(SPARK_TUNINGS)}")
        if self.spark_conf_file and not Path(self.spark_conf_file).is_file():
            raise SettingsError(
                f"PINTEREST_SPARK_CONF={self.spark_conf_file} is not a file (spark-defaults style: one "
                "'spark.key value' or 'spark.key=value' a line)"
            )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            lake_root=env.get("PINTEREST_LAKE_ROOT") or defaults.lake_root,
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or defaults.kafka_bootstrap_servers,
            topic_prefix=env.get("PINTEREST_TOPIC_PREFIX") or defaults.topic_prefix,
            topic_replication=_whole_number(env, "PINTEREST_TOPIC_REPLICATION"),
            source_db_url=env.get("SOURCE_DB_URL") or defaults.source_db_url,
            spark_remote=env.get("SPARK_REMOTE") or None,
            spark_master=env.get("SPARK_MASTER") or defaults.spark_master,
            spark_connect_timeout_s=int(env.get("PINTEREST_SPARK_CONNECT_TIMEOUT_SECONDS") or defaults.spark_connect_timeout_s),
            jars_dir=Path(env["PINTEREST_JARS_DIR"]) if env.get("PINTEREST_JARS_DIR") else defaults.jars_dir,
            spark_tuning=(env.get("PINTEREST_SPARK_TUNING") or "").strip().lower() or None,
            spark_conf_file=env.get("PINTEREST_SPARK_CONF") or None,
            max_records_per_run=int(env.get("PINTEREST_MAX_RECORDS_PER_RUN") or defaults.max_records_per_run),
            batch_cron=env.get("PINTEREST_BATCH_CRON") or defaults.batch_cron,
            maintenance_cron=env.get("PINTEREST_MAINTENANCE_CRON") or defaults.maintenance_cron,
            vacuum_retain_hours=float(env.get("PINTEREST_VACUUM_RETAIN_HOURS") or defaults.vacuum_retain_hours),
            freshness_minutes=float(env.get("PINTEREST_FRESHNESS_MINUTES") or defaults.freshness_minutes),
            housekeeping_cron=env.get("PINTEREST_HOUSEKEEPING_CRON") or defaults.housekeeping_cron,
            keep_successful_runs_hours=float(env.get("PINTEREST_KEEP_SUCCESSFUL_RUNS_HOURS") or defaults.keep_successful_runs_hours),
            kafka_security=KafkaSecurity.from_env(env),
            # The variables boto3 itself reads, so one setting serves boto3 and Spark's s3a.
            s3_endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )

    def __repr__(self) -> str:
        # The source URL may hold the database password; the Kafka password is a Secret already.
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["source_db_url"] = mask_url(self.source_db_url)
        return f"Settings({', '.join(f'{name}={value!r}' for name, value in values.items())})"

    def topic(self, kind: str) -> str:
        """Topic name for one event kind (`pin`, `geo` or `user`)."""
        if kind not in TOPIC_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {', '.join(TOPIC_KINDS)}")
        return f"{self.topic_prefix}.{kind}"

    @property
    def topics(self) -> dict[str, str]:
        return {kind: self.topic(kind) for kind in TOPIC_KINDS}

    @property
    def spark_is_local(self) -> bool:
        """The Spark driver runs on this machine: a Spark Connect server on the loopback interface (the one
        `make up` starts), or an in-process session whose executors do too (`master_on_this_machine`)."""
        if self.spark_remote:
            return is_loopback(urlsplit(self.spark_remote).hostname)
        return master_on_this_machine(self.spark_master)

    @property
    def small_machine_spark(self) -> bool:
        """Whether the small-machine Spark settings apply: PINTEREST_SPARK_TUNING, or where Spark runs (a driver
        on this machine in local mode, SPARK_MASTER `local[...]`: `make up`'s server may drive a cluster's)."""
        local_mode = self.spark_is_local and self.spark_master.startswith("local")
        return (self.spark_tuning or ("small-machine" if local_mode else "none")) == "small-machine"

    @property
    def lake_on_s3(self) -> bool:
        return self.lake_root.startswith("s3a://")

    def table_path(self, layer: str, name: str) -> str:
        return f"{self.lake_root.rstrip('/')}/{layer}/{name}"


def master_on_this_machine(master: str) -> bool:
    """A Spark master whose executors run on this machine: local mode (`local[...]`), or a standalone master on
    the loopback interface (infra/stack.sh's cluster). A driver binds to loopback for those only: a cluster's
    executors elsewhere must reach it, and so must those in the pods of a Kubernetes on this machine
    (`k8s://https://127.0.0.1:6443`)."""
    return master.startswith("local") or (master.startswith("spark://") and is_loopback(urlsplit(master).hostname))


def is_loopback(host: str | None) -> bool:
    return (host or "").strip("[]").lower() in LOOPBACK_HOSTS


def mask_url(url: str) -> str:
    """The URL with its password replaced by `***`, safe to print or log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0] + ":***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[1]}"))
