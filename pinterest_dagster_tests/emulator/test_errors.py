"""Error paths of the emulator CLI: one readable sentence and a non-zero exit, never a stack trace."""

from __future__ import annotations

import subprocess

import pytest
from kafka import KafkaAdminClient

from pinterest_dagster.lib.kafka import client_config
from pinterest_dagster_tests.services import isolated_settings, require_kafka, run_module


def run_emulator(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_module("emulator", *args, env=env, timeout=120)


def assert_clean_failure(result: subprocess.CompletedProcess, *phrases: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


def test_database_down_gives_a_clear_error_with_the_password_masked():
    url = "mysql+pymysql://pinterest:s3cret-pw@127.0.0.1:1/pinterest_data"
    result = run_emulator("post", "--posts", "1", "--db-url", url)
    assert_clean_failure(result, "cannot connect to the source database", "pinterest:***@127.0.0.1:1")
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_unseeded_database_says_to_seed_first(tmp_path):
    result = run_emulator("post", "--posts", "1", "--db-url", f"sqlite:///{tmp_path / 'empty.db'}")
    assert_clean_failure(result, "emulator seed")


def test_kafka_down_gives_a_clear_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    assert run_emulator("seed", "--rows", "10", "--db-url", url).returncode == 0
    result = run_emulator("post", "--posts", "1", "--db-url", url, env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert_clean_failure(result, "no Kafka broker reachable at 127.0.0.1:1")


@pytest.mark.kafka
def test_more_topic_copies_than_live_brokers_creates_nothing_and_says_so():
    settings = isolated_settings()  # make up's single broker
    require_kafka(settings)
    prefix = settings.topic_prefix
    result = run_emulator("topics", env={"PINTEREST_TOPIC_REPLICATION": "3", "PINTEREST_TOPIC_PREFIX": prefix})
    assert_clean_failure(result, "PINTEREST_TOPIC_REPLICATION=3, but the Kafka cluster at", "lists 1 live broker",
                         f"{prefix}.geo, {prefix}.pin, {prefix}.user not created")
    admin = KafkaAdminClient(**client_config(settings))
    try:
        assert not [topic for topic in admin.list_topics() if topic.startswith(f"{prefix}.")]
    finally:
        admin.close()


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["post", "--rate", "-1"], "must be zero or positive"),
        (["post", "--posts", "0"], "must be a positive integer"),
        (["post", "--posts", "5", "--duration", "3"], "not allowed with argument"),
        (["post", "--sink", "s3"], "invalid choice"),
        (["seed", "--rows", "many"], "invalid positive_int value"),
        (["launch"], "invalid choice"),
    ],
)
def test_bad_arguments_are_rejected_with_the_reason(args, phrase):
    assert_clean_failure(run_emulator(*args), phrase)
