"""Dagster resources: where the lake is and how to reach Kafka. Built from `Settings` in definitions.py."""

import dagster as dg

from pinterest_dagster.settings import Settings


class LakeResource(dg.ConfigurableResource):
    """The lakehouse root: a local folder or `s3a://bucket/prefix`. Tables live at `<root>/<layer>/<name>`."""

    root: str

    def path(self, layer: str, name: str) -> str:
        return f"{self.root.rstrip('/')}/{layer}/{name}"

    def path_for(self, asset_key: dg.AssetKey) -> str:
        layer, name = asset_key.path[-2:]
        return self.path(layer, name)


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster and the topic prefix of the pin/geo/user topics."""

    bootstrap_servers: str
    topic_prefix: str

    @classmethod
    def from_settings(cls, settings: Settings) -> "KafkaResource":
        return cls(bootstrap_servers=settings.kafka_bootstrap_servers, topic_prefix=settings.topic_prefix)

    def settings(self) -> Settings:
        """Settings for the client helpers of `pinterest_dagster.lib.kafka`."""
        return Settings(kafka_bootstrap_servers=self.bootstrap_servers, topic_prefix=self.topic_prefix)

    def topic(self, kind: str) -> str:
        return self.settings().topic(kind)

    def spark_options(self) -> dict[str, str]:
        """Options of Spark's Kafka source for this cluster."""
        return {
            "kafka.bootstrap.servers": self.bootstrap_servers,
            # A read of exact ranges stops at their ends, but each consumer's last fetch at the head of a
            # partition waits for new data for up to fetch.max.wait.ms (500 by default): with one task
            # per partition that alone made reading a micro-batch take 2.9 s instead of 0.4 s.
            "kafka.fetch.max.wait.ms": "10",
        }
