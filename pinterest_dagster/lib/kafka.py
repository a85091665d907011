"""Kafka clients built from the settings: topic creation, producers, end offsets.

Every Kafka client of the project (emulator, ingestion, sensors) is configured here, so security
settings added for a cluster apply to all of them at once.
"""

from __future__ import annotations

import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from pinterest_dagster.settings import Settings

DEFAULT_PARTITIONS = 3


class KafkaUnavailableError(RuntimeError):
    """No broker answered at the configured bootstrap servers."""


def client_config(settings: Settings) -> dict:
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        # Fail fast when no broker answers; connect_with_retry decides how long to keep trying.
        "bootstrap_timeout_ms": 5_000,
    }


def connect_with_retry(factory, settings: Settings, attempts: int = 3, delay_s: float = 2.0):
    """Build a client, retrying while no broker answers; then fail with one readable sentence."""
    for attempt in range(1, attempts + 1):
        try:
            return factory()
        except (KafkaTimeoutError, KafkaConnectionError):
            if attempt == attempts:
                raise KafkaUnavailableError(
                    f"no Kafka broker reachable at {settings.kafka_bootstrap_servers} after {attempts} attempts "
                    "(is it running? `make up` starts a local one; KAFKA_BOOTSTRAP_SERVERS points elsewhere)"
                ) from None
            time.sleep(delay_s)


def ensure_topics(settings: Settings, partitions: int = DEFAULT_PARTITIONS) -> list[str]:
    """Create the pin/geo/user topics that do not exist yet; returns the names created."""
    admin = connect_with_retry(lambda: KafkaAdminClient(**client_config(settings)), settings)
    try:
        missing = sorted(set(settings.topics.values()) - set(admin.list_topics()))
        created = []
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another client
        if created:
            _wait_for_metadata(settings, created)
        return created
    finally:
        admin.close()


def _wait_for_metadata(settings: Settings, topics: list[str], timeout_s: float = 30.0) -> None:
    """New topics take a moment to get leaders; producing before that fails."""
    consumer = KafkaConsumer(**client_config(settings))
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(consumer.partitions_for_topic(t) for t in topics):
                return
            time.sleep(0.2)
        raise KafkaError(f"topics {topics} created but have no partitions after {timeout_s:.0f} s")
    finally:
        consumer.close()


def make_producer(settings: Settings, **overrides) -> KafkaProducer:
    """A producer tuned for throughput with delivery confirmation (acks=all, retries)."""
    config = {
        **client_config(settings),
        "acks": "all",
        "linger_ms": 20,
        "batch_size": 256 * 1024,
        "max_in_flight_requests_per_connection": 5,
        "enable_idempotence": True,
        "retries": 10,
        "request_timeout_ms": 15_000,
        "delivery_timeout_ms": 60_000,
        **overrides,
    }
    return connect_with_retry(lambda: KafkaProducer(**config), settings)


def offset_bounds(settings: Settings, topics: list[str]) -> dict[TopicPartition, tuple[int, int]]:
    """(first offset still in the log, next offset to be written) for every partition of `topics`.

    A topic that does not exist has no partitions here.
    """
    consumer = connect_with_retry(lambda: KafkaConsumer(**client_config(settings)), settings)
    try:
        partitions = [
            TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return {}
        begin, end = consumer.beginning_offsets(partitions), consumer.end_offsets(partitions)
        return {tp: (begin[tp], end[tp]) for tp in partitions}
    finally:
        consumer.close()


def end_offsets(settings: Settings, topics: list[str]) -> dict[TopicPartition, int]:
    """The next offset to be written, for every partition of `topics`."""
    return {tp: end for tp, (_, end) in offset_bounds(settings, topics).items()}


def events_per_topic(settings: Settings) -> dict[str, int]:
    """Events ever written to each pin/geo/user topic: the sum of its partitions' end offsets."""
    counts = dict.fromkeys(settings.topics.values(), 0)
    for tp, end in end_offsets(settings, list(counts)).items():
        counts[tp.topic] += end
    return counts
