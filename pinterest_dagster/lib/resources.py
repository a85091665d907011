"""Dagster resources: where the lake is and how to reach Kafka. Built from `Settings` in definitions.py."""

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from pinterest_dagster.lib.kafka import java_security_config
from pinterest_dagster.lib.s3 import check_bucket, s3_resource
from pinterest_dagster.settings import KafkaSecurity, Secret, Settings


class LakeResource(dg.ConfigurableResource):
    """The lakehouse root: a local folder or `s3a://bucket/prefix`. Tables live at `<root>/<layer>/<name>`.

    On S3, `s3` is the S3Resource whose endpoint and region Spark's s3a also uses (`lib/spark.py`); each
    run first checks through it that the bucket answers, so a wrong endpoint or credentials fail in
    one sentence instead of deep in a Spark write.
    """

    root: str
    s3: S3Resource | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "LakeResource":
        return cls(root=settings.lake_root, s3=s3_resource(settings) if settings.lake_on_s3 else None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.s3 is not None:
            check_bucket(self.s3, self.root)

    def path(self, layer: str, name: str) -> str:
        return f"{self.root.rstrip('/')}/{layer}/{name}"

    def path_for(self, asset_key: dg.AssetKey) -> str:
        layer, name = asset_key.path[-2:]
        return self.path(layer, name)


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster, how to authenticate to it, and the topic prefix of the pin/geo/user topics."""

    bootstrap_servers: str
    topic_prefix: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    # A dg.EnvVar when read from the environment (from_settings): Dagster then shows the variable's name,
    # never the password, in the UI and in the code location's snapshot.
    sasl_password: str | None = Field(default=None, repr=False)
    ssl_cafile: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "KafkaResource":
        security = settings.kafka_security
        return cls(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic_prefix=settings.topic_prefix,
            security_protocol=security.protocol,
            sasl_mechanism=security.sasl_mechanism,
            sasl_username=security.sasl_username,
            sasl_password=_password_config(security.sasl_password),
            ssl_cafile=security.ssl_cafile,
        )

    def settings(self) -> Settings:
        """Settings for the client helpers of `pinterest_dagster.lib.kafka`."""
        security = KafkaSecurity(
            protocol=self.security_protocol,
            sasl_mechanism=self.sasl_mechanism,
            sasl_username=self.sasl_username,
            sasl_password=_password_secret(self.sasl_password),
            ssl_cafile=self.ssl_cafile,
        )
        return Settings(kafka_bootstrap_servers=self.bootstrap_servers, topic_prefix=self.topic_prefix, kafka_security=security)

    def topic(self, kind: str) -> str:
        return self.settings().topic(kind)

    def spark_options(self) -> dict[str, str]:
        """Options of Spark's Kafka source for this cluster. They may hold the password: never log them."""
        security = {f"kafka.{key}": value for key, value in java_security_config(self.settings().kafka_security).items()}
        return {
            "kafka.bootstrap.servers": self.bootstrap_servers,
            # A read of exact ranges stops at their ends, but each consumer's last fetch at the head of a
            # partition waits for new data for up to fetch.max.wait.ms (500 by default): with one task
            # per partition that alone made reading a micro-batch take 2.9 s instead of 0.4 s.
            "kafka.fetch.max.wait.ms": "10",
            **security,
        }


def _password_config(secret: Secret | None) -> str | None:
    if secret is None:
        return None
    return dg.EnvVar(secret.env_var) if secret.env_var else secret.value


def _password_secret(password: str | None) -> Secret | None:
    # Dagster resolves an EnvVar when it initialises the resource; a resource used directly (a script,
    # a test) still holds the EnvVar, whose str() raises: read the variable as Dagster would.
    if isinstance(password, dg.EnvVar):
        return Secret(password.get_value(), password.env_var_name) if password.get_value() else None
    return Secret(password) if password else None
