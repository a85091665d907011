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

    def settings(self) -> Settings:
        """Settings for the client helpers of `pinterest_dagster.lib.kafka`."""
        return Settings(kafka_bootstrap_servers=self.bootstrap_servers, topic_prefix=self.topic_prefix)

    def topic(self, kind: str) -> str:
        return self.settings().topic(kind)

    def spark_options(self) -> dict[str, str]:
        """Options of Spark's Kafka source for this cluster."""
        return {"kafka.bootstrap.servers": self.bootstrap_servers}
