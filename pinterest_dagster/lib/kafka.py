"""Kafka clients built from the settings: topic creation, producers, end offsets.

Every Kafka client of the project (emulator, ingestion, sensors) is configured here, and Spark's Kafka
source from `java_security_config`, so the security settings of a cluster apply to all of them at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    KafkaConnectionError, KafkaError, KafkaTimeoutError, RetriableError, SaslAuthenticationFailedError,
    TopicAlreadyExistsError, UnknownBrokerIdError,
)

from pinterest_dagster.settings import KafkaSecurity, Settings

DEFAULT_PARTITIONS = 3
OFFSETS_TIMEOUT_MS = 10_000  # each request of offset_bounds: metadata, first and next offsets (kafka-python's: 30 s)
log = logging.getLogger(__name__)
T = TypeVar("T")


class KafkaUnavailableError(RuntimeError):
    """No broker answered at the configured bootstrap servers."""


class KafkaAuthenticationError(KafkaUnavailableError):
    """A broker answered but rejected the SASL credentials: retrying cannot help."""


JAVA_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
# From aws-msk-iam-auth, a jar Spark needs on its classpath for AWS_MSK_IAM (docs/configuration.md, "Secure Kafka / MSK").
MSK_IAM_JAVA_CONFIG = {
    "sasl.jaas.config": "software.amazon.msk.auth.iam.IAMLoginModule required;",
    "sasl.client.callback.handler.class": "software.amazon.msk.auth.iam.IAMClientCallbackHandler",
}


def client_config(settings: Settings) -> dict:
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        # Fail fast when no broker answers; connect_with_retry decides how long to keep trying.
        "bootstrap_timeout_ms": 5_000,
        **security_config(settings.kafka_security),
    }


def security_config(security: KafkaSecurity) -> dict:
    """kafka-python's settings for the protocol, SASL mechanism and CA file (AWS_MSK_IAM signs with botocore)."""
    config = {"security_protocol": security.protocol}
    if security.sasl_mechanism:
        config["sasl_mechanism"] = security.sasl_mechanism
    if security.uses_password:
        config["sasl_plain_username"] = security.sasl_username
        config["sasl_plain_password"] = _UnprintedPassword(security.sasl_password.value)
    if security.ssl_cafile:
        config["ssl_cafile"] = security.ssl_cafile
    return config


class _UnprintedPassword(str):
    """The password, with `***` as its repr: KafkaAdminClient logs its whole configuration at DEBUG level."""

    def __repr__(self) -> str:
        return "'***'"


def java_security_config(security: KafkaSecurity) -> dict[str, str]:
    """The same settings for Kafka's Java client, which Spark's Kafka source runs (options `kafka.<name>`).

    The JAAS line holds the password: never log the result.
    """
    config = {"security.protocol": security.protocol}
    if security.sasl_mechanism:
        config["sasl.mechanism"] = security.sasl_mechanism
    if security.uses_password:
        config["sasl.jaas.config"] = (
            f"{JAVA_LOGIN_MODULES[security.sasl_mechanism]} required "
            f"username={_jaas_quoted(security.sasl_username)} password={_jaas_quoted(security.sasl_password.value)};"
        )
    if security.sasl_mechanism == "AWS_MSK_IAM":
        config.update(MSK_IAM_JAVA_CONFIG)
    if security.ssl_cafile:
        # The Java client reads a PEM file of CA certificates directly, no JKS truststore needed.
        config["ssl.truststore.type"] = "PEM"
        config["ssl.truststore.location"] = security.ssl_cafile
    return config


def _jaas_quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class _ConnectionErrors(logging.Handler):
    """kafka-python logs why each bootstrap connection failed, then raises only a timeout: keep the why."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.last: Exception | None = None
        self.rejected: SaslAuthenticationFailedError | None = None

    def emit(self, record: logging.LogRecord) -> None:
        for arg in record.args if isinstance(record.args, tuple) else ():
            if isinstance(arg, SaslAuthenticationFailedError):
                self.rejected = arg
            if isinstance(arg, Exception) and not isinstance(arg, KafkaTimeoutError):
                self.last = arg


@contextmanager
def _watching_connection_errors():
    handler = _ConnectionErrors()
    logger = logging.getLogger("kafka.net.manager")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def connect_with_retry(factory, settings: Settings, attempts: int = 3, delay_s: float = 2.0):
    """Build a client, retrying while no broker answers; then fail with one readable sentence.

    Rejected credentials fail at once: a retry would only be rejected again.
    """
    for attempt in range(1, attempts + 1):
        with _watching_connection_errors() as errors:
            try:
                return factory()
            except (KafkaTimeoutError, KafkaConnectionError):
                pass
        if errors.rejected or attempt == attempts:
            raise _connection_error(settings, errors, attempts) from None
        time.sleep(delay_s)


def _connection_error(settings: Settings, errors: _ConnectionErrors, attempts: int) -> KafkaUnavailableError:
    where, security = settings.kafka_bootstrap_servers, settings.kafka_security
    if errors.rejected:
        user = f"user {security.sasl_username!r} " if security.sasl_username else ""
        return KafkaAuthenticationError(
            f"Kafka at {where} rejected {user}({security.sasl_mechanism}): {errors.rejected}. "
            "Check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM"
        )
    last = f"; last error: {errors.last}" if errors.last else ""
    # A broker may also drop a connection with wrong credentials without saying why (a race in its delayed close).
    sasl = (
        "; with SASL, check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SASL_MECHANISM and that "
        "KAFKA_SECURITY_PROTOCOL matches the broker's listener" if security.uses_sasl else ""
    )
    return KafkaUnavailableError(
        f"no Kafka broker reachable at {where} after {attempts} attempts{last} "
        f"(is it running? `make up` starts a local one; KAFKA_BOOTSTRAP_SERVERS points elsewhere){sasl}"
    )


class TopicReplicationError(KafkaUnavailableError):
    """PINTEREST_TOPIC_REPLICATION asks for more copies than the cluster has live brokers."""


def topic_replication(brokers: int, wanted: int | None = None) -> tuple[int, dict[str, str]]:
    """Replication factor and topic configs for a cluster listing `brokers` live brokers.

    By default 3 copies where there are three brokers or more, acknowledged (acks=all) once 2 have the event,
    so one broker can fail without losing an acknowledged event or stopping producers; fewer copies where
    fewer brokers are listed (one on a single local broker). `wanted` (PINTEREST_TOPIC_REPLICATION) fixes
    the number: on a cluster with a broker down at that moment, topics are then not created with fewer
    copies but not created at all (TopicReplicationError, raised by `ensure_topics`)."""
    replicas = wanted or min(3, max(1, brokers))
    return replicas, ({"min.insync.replicas": "2"} if replicas >= 3 else {})


def live_brokers(admin: KafkaAdminClient) -> int:
    """The brokers the cluster lists that are not fenced. kafka-python asks for fenced ones too
    (DescribeCluster v2): a broker that died stays registered, fenced once its session times out."""
    return sum(not broker.get("is_fenced", False) for broker in admin.describe_cluster()["brokers"])


def ensure_topics(settings: Settings, partitions: int = DEFAULT_PARTITIONS) -> list[str]:
    """Create the pin/geo/user topics that do not exist yet; returns the names created."""
    created = []

    def create_missing() -> list[str]:
        admin = connect_with_retry(lambda: KafkaAdminClient(**client_config(settings)), settings)
        try:
            missing = sorted(set(settings.topics.values()) - set(admin.list_topics()))
            brokers = live_brokers(admin)
            if brokers == 0:  # a broker that just started lists itself fenced until the controller registers it
                raise KafkaTimeoutError("the Kafka cluster lists no unfenced broker yet")  # retriable: asked again
            replicas, configs = topic_replication(brokers, settings.topic_replication)
            if missing and replicas > brokers:
                raise TopicReplicationError(
                    f"PINTEREST_TOPIC_REPLICATION={replicas}, but the Kafka cluster at {settings.kafka_bootstrap_servers} "
                    f"lists {brokers} live broker{'s' if brokers != 1 else ''}: {', '.join(missing)} not created. Start "
                    "the missing brokers, or lower PINTEREST_TOPIC_REPLICATION"
                )
            if missing and settings.topic_replication is None and 1 < brokers < 3:
                log.warning(f"the Kafka cluster at {settings.kafka_bootstrap_servers} lists {brokers} live brokers: "
                            f"{', '.join(missing)} get {replicas} copies (PINTEREST_TOPIC_REPLICATION=3 requires three)")
            for name in missing:
                try:
                    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=replicas,
                                                  topic_configs=configs)])
                    created.append(name)
                except TopicAlreadyExistsError:
                    pass  # created concurrently by another client, or by an attempt whose answer was lost
            if missing:
                _wait_for_metadata(settings, missing)
            return created
        finally:
            admin.close()

    return asking_again(create_missing, f"creating the topics {', '.join(settings.topics.values())}", settings)


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


def asking_again(question: Callable[[], T], what: str, settings: Settings,
                 within_s: float = 30.0, delay_s: float = 1.0) -> T:
    """`question()`, asked again each `delay_s` while a broker fails to answer it, until `within_s` have passed;
    then one KafkaUnavailableError sentence.

    A broker that died stays in the cluster's metadata, leader of its partitions, until the controller fences
    it (broker.session.timeout.ms: 9 s by default, 6 s in infra/kafka/cluster.properties). Meanwhile kafka-python
    raises at once when its request goes to that broker: a metadata request (sent to a broker picked at random)
    refused, a leader's address unknown. No broker at all fails in `connect_with_retry` instead (three tries of
    5 s, 2 s apart). An attempt begun before `within_s` ran out may itself wait for its requests' timeouts:
    `offset_bounds` bounds each of its three requests to OFFSETS_TIMEOUT_MS (kafka-python's default is 30 s).
    """
    started, attempt = time.monotonic(), 1
    while True:
        try:
            return question()
        except (RetriableError, UnknownBrokerIdError) as error:
            waited = time.monotonic() - started
            if waited + delay_s > within_s:
                raise KafkaUnavailableError(
                    f"{what} at {settings.kafka_bootstrap_servers}: no answer in {waited:.0f} s ({attempt} attempts); "
                    f"last error: {error}"
                ) from error
            if attempt == 1:
                log.warning(f"{what}: {error}; asking again for up to {within_s:.0f} s")
            attempt += 1
        time.sleep(delay_s)


def offset_bounds(settings: Settings, topics: list[str]) -> dict[TopicPartition, tuple[int, int]]:
    """(first offset still in the log, next offset to be written) for every partition of `topics`.

    A topic that does not exist has no partitions here. Asked again while a dead broker is not yet fenced
    (`asking_again`).
    """
    def ask() -> dict[TopicPartition, tuple[int, int]]:
        consumer = connect_with_retry(
            lambda: KafkaConsumer(**client_config(settings), request_timeout_ms=OFFSETS_TIMEOUT_MS), settings)
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

    return asking_again(ask, f"reading the offsets of {', '.join(topics)}", settings)


def topic_ids(settings: Settings, topics: list[str]) -> dict[str, str]:
    """Kafka's id of each of `topics` that exists (KIP-516, brokers 2.8 and later): a topic deleted and
    created again under the same name gets a new one. About 15 ms against the local broker."""
    def ask() -> dict[str, str]:
        admin = connect_with_retry(lambda: KafkaAdminClient(**client_config(settings)), settings)
        try:
            described = {t["name"]: str(t.get("topic_id") or "") for t in admin.describe_topics(topics)
                         if t.get("error_code", 0) == 0}
            return {name: topic_id for name, topic_id in described.items() if set(topic_id) - set("0-")}  # not the null id
        finally:
            admin.close()

    return asking_again(ask, f"reading the ids of {', '.join(topics)}", settings)


def end_offsets(settings: Settings, topics: list[str]) -> dict[TopicPartition, int]:
    """The next offset to be written, for every partition of `topics`."""
    return {tp: end for tp, (_, end) in offset_bounds(settings, topics).items()}


def events_per_topic(settings: Settings) -> dict[str, int]:
    """Events ever written to each pin/geo/user topic: the sum of its partitions' end offsets."""
    counts = dict.fromkeys(settings.topics.values(), 0)
    for tp, end in end_offsets(settings, list(counts)).items():
        counts[tp.topic] += end
    return counts
