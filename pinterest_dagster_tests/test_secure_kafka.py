"""Secure Kafka: the security settings mapped for kafka-python and for Spark's Kafka source, then used
against the local broker's SASL listeners (infra/stack.sh) by the emulator, the sensor and Spark."""

from __future__ import annotations

import json
import logging
import time

import dagster as dg
import pytest

from emulator.cli import main as emulator_main
from pinterest_dagster.defs.streaming.sensors import build_kafka_microbatch_sensor
from pinterest_dagster.lib.ingestion import OffsetRange, read_ranges
from pinterest_dagster.lib.kafka import (
    KafkaUnavailableError, client_config, ensure_topics, java_security_config, make_producer, offset_bounds,
)
from pinterest_dagster.lib.resources import KafkaResource
from pinterest_dagster.settings import KafkaSecurity, Secret, Settings
from pinterest_dagster_tests.services import secure_kafka_env, secure_kafka_settings

SCRAM = KafkaSecurity(
    protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256", sasl_username="pinterest", sasl_password=Secret('pa"55\\word'),
)


def test_kafka_python_gets_the_protocol_mechanism_and_credentials():
    config = client_config(Settings(kafka_security=SCRAM))
    assert config["security_protocol"] == "SASL_SSL" and config["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("pinterest", 'pa"55\\word')
    # KafkaAdminClient logs its configuration at DEBUG level: the password prints as ***.
    assert 'pa"55' not in repr(config) and "'***'" in repr(config)
    assert client_config(Settings())["security_protocol"] == "PLAINTEXT"


def test_spark_gets_a_jaas_login_per_mechanism_and_the_ca_as_a_pem_truststore(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    plain = KafkaSecurity(
        protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="u", sasl_password=Secret("p"), ssl_cafile=str(ca)
    )
    assert java_security_config(plain) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";',
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca),
    }
    # JAAS values are quoted strings: a quote or backslash in the password is escaped, not a syntax error.
    assert java_security_config(SCRAM)["sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="pinterest" password="pa\\"55\\\\word";'
    )
    assert java_security_config(KafkaSecurity()) == {"security.protocol": "PLAINTEXT"}


def test_msk_iam_uses_botocore_in_kafka_python_and_the_aws_login_module_in_spark():
    iam = KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="AWS_MSK_IAM")
    assert client_config(Settings(kafka_security=iam)) | {"bootstrap_servers": None} == {
        "bootstrap_servers": None, "bootstrap_timeout_ms": 5_000, "security_protocol": "SASL_SSL", "sasl_mechanism": "AWS_MSK_IAM",
    }
    options = KafkaResource.from_settings(Settings(kafka_security=iam)).spark_options()
    assert options["kafka.sasl.jaas.config"] == "software.amazon.msk.auth.iam.IAMLoginModule required;"
    assert options["kafka.sasl.client.callback.handler.class"] == "software.amazon.msk.auth.iam.IAMClientCallbackHandler"


@pytest.fixture(scope="module")
def source_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('source') / 'source.db'}"
    assert emulator_main(["seed", "--rows", "50", "--seed", "7", "--db-url", url]) == 0
    return url


def sensor_ranges(kafka: KafkaResource) -> list[dict]:
    sensor = build_kafka_microbatch_sensor(max_records_per_run=1_000, wait_seconds=0)
    with dg.instance_for_test() as instance:
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources={"kafka": kafka}))
    return [r for request in result.run_requests for r in request.run_config["ops"]["ingest_kafka_events"]["config"]["ranges"]]


@pytest.mark.kafka
@pytest.mark.parametrize(
    "protocol, mechanism",
    [("SASL_PLAINTEXT", "PLAIN"), ("SASL_PLAINTEXT", "SCRAM-SHA-256"), ("SASL_SSL", "SCRAM-SHA-512")],
)
def test_emulator_posts_and_the_sensor_sees_the_offsets_through_sasl(monkeypatch, caplog, source_url, protocol, mechanism):
    # Configured only through the environment, as a deployment is: the emulator reads it, and the sensor's
    # resource takes the password as dg.EnvVar("KAFKA_SASL_PASSWORD").
    settings = secure_kafka_settings(protocol, mechanism)
    for name, value in {**secure_kafka_env(protocol, mechanism), "PINTEREST_TOPIC_PREFIX": settings.topic_prefix}.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG, logger="kafka.admin")  # logs its whole configuration at DEBUG level
    assert emulator_main(["post", "--posts", "20", "--rate", "0", "--seed", "1", "--db-url", source_url, "--quiet"]) == 0
    assert "Starting KafkaAdminClient" in caplog.text and settings.kafka_security.sasl_password.value not in caplog.text

    kafka = KafkaResource.from_settings(Settings.from_env())
    assert isinstance(kafka.sasl_password, dg.EnvVar)
    per_topic = {}
    for r in sensor_ranges(kafka):
        per_topic[r["topic"]] = per_topic.get(r["topic"], 0) + r["end"] - r["start"]
    assert per_topic == dict.fromkeys(settings.topics.values(), 20)


@pytest.mark.kafka
@pytest.mark.parametrize("protocol, mechanism", [("SASL_PLAINTEXT", "PLAIN"), ("SASL_SSL", "SCRAM-SHA-512")])
def test_a_wrong_password_fails_in_seconds_with_an_error_that_names_the_variables(caplog, protocol, mechanism):
    settings = secure_kafka_settings(protocol, mechanism, password="not-the-pa55word")
    # kafka-python's own DEBUG lines dump the bytes it sends, PLAIN's password included (docs/configuration.md); ours never do.
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="pinterest_dagster")
    started = time.monotonic()
    # The broker says "invalid credentials" (KafkaAuthenticationError) on all but rare connections.
    with pytest.raises(KafkaUnavailableError, match="KAFKA_SASL_PASSWORD") as rejected:
        offset_bounds(settings, list(settings.topics.values()))
    assert time.monotonic() - started < 25
    assert "not-the-pa55word" not in str(rejected.value) + caplog.text


@pytest.mark.kafka
def test_the_emulator_reports_rejected_credentials_in_one_sentence(monkeypatch, capsys, source_url):
    for name, value in secure_kafka_env("SASL_PLAINTEXT", "SCRAM-SHA-256", password="not-the-pa55word").items():
        monkeypatch.setenv(name, value)
    assert emulator_main(["post", "--posts", "1", "--db-url", source_url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "KAFKA_SASL_PASSWORD" in err and "Traceback" not in err
    assert "not-the-pa55word" not in err


@pytest.mark.kafka
@pytest.mark.spark
@pytest.mark.parametrize("protocol, mechanism", [("SASL_PLAINTEXT", "PLAIN"), ("SASL_SSL", "SCRAM-SHA-512")])
def test_spark_reads_a_range_through_sasl_with_the_resource_options(spark, protocol, mechanism):
    settings = secure_kafka_settings(protocol, mechanism)
    ensure_topics(settings, partitions=1)
    producer = make_producer(settings)
    for i in range(30):
        producer.send(settings.topic("pin"), key=str(i).encode(), value=json.dumps({"ind": i}).encode())
    producer.flush()
    producer.close()

    kafka = KafkaResource.from_settings(settings)
    rows = read_ranges(spark, kafka, [OffsetRange(settings.topic("pin"), 0, 5, 25)]).select("offset", "value").collect()
    assert sorted(r.offset for r in rows) == list(range(5, 25))
    assert sorted(json.loads(r.value)["ind"] for r in rows) == list(range(5, 25))
