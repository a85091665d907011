"""A real Kafka cluster: three KRaft brokers (`infra/stack.sh up kafka-cluster`), topics replicated three
times with min.insync.replicas=2, and the leader of a partition SIGKILLed while the emulator posts.

The emulator must report every event delivered (idempotent producer, acks=all), the pipeline must go on
ingesting from the two brokers left (a failed run retried as the instance's run_retries does), and every
event must end in raw or rejects exactly once.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import threading
import warnings

import pytest
import yaml
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaConnectionError, TopicAlreadyExistsError, UnknownBrokerIdError

from pinterest_dagster.lib import delta
from pinterest_dagster.lib.kafka import (
    KafkaUnavailableError, TopicReplicationError, asking_again, client_config, ensure_topics, events_per_topic, live_brokers,
)
from pinterest_dagster.settings import LOCAL_DIR, REPO_ROOT, TOPIC_KINDS, Settings
from pinterest_dagster_tests.pipeline import make_pipeline
from pinterest_dagster_tests.services import process_gone, wait_for
from pinterest_dagster_tests.streaming.test_streaming_run import sensor_run_configs

NODES = {1: 19092, 2: 19094, 3: 19096}  # infra/stack.sh: node n's PLAINTEXT port
# As the daemon retries a failed run: infra/dagster/dagster.yaml's run_retries.
RUN_ATTEMPTS = 1 + yaml.safe_load((REPO_ROOT / "infra/dagster/dagster.yaml").read_text())["run_retries"]["max_retries"]
CLUSTER = ",".join(f"127.0.0.1:{port}" for port in NODES.values())


def stack(*args: str) -> str:
    done = subprocess.run(["bash", str(REPO_ROOT / "infra/stack.sh"), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def cluster():
    assert "kafka-cluster: running" in stack("up", "kafka-cluster")
    yield
    stack("down", "kafka-cluster")
    shutil.rmtree(LOCAL_DIR / "kafka-cluster", ignore_errors=True)


@pytest.fixture(scope="module")
def pipeline(cluster, spark, tmp_path_factory, source_url):
    return make_pipeline(tmp_path_factory, source_url, spark_remote=None, kafka_bootstrap_servers=CLUSTER)


def drain(pipeline, cursor):
    """Micro-batches as the sensor plans them, run in process, until no offset is left; returns the
    cursor and how many runs it took.

    A run that fails is run again, up to RUN_ATTEMPTS in all, as the instance's run_retries does under the
    daemon: while leadership moves, a read may fail once (ingestion is idempotent per range). Each failure is reported as a warning,
    which pytest's summary shows.
    """
    runs = 0
    while True:
        configs, cursor = sensor_run_configs(pipeline, cursor, max_records=100_000)
        if not configs:
            return cursor, runs
        for config in configs:
            for attempt in range(1, RUN_ATTEMPTS + 1):
                try:
                    pipeline.run_job("streaming_job", config)
                    break
                except AssertionError as failure:
                    if attempt == RUN_ATTEMPTS:
                        raise
                    warnings.warn(f"streaming_job attempt {attempt} of {RUN_ATTEMPTS} failed, run again: {failure}",
                                  stacklevel=1)
            runs += 1


def leader_of(admin, topic: str, partition: int) -> int:
    [described] = admin.describe_topics([topic])
    return next(p["leader_id"] for p in described["partitions"] if p["partition_index"] == partition)


def leader_of_pin_0(pipeline) -> int:
    admin = KafkaAdminClient(**client_config(pipeline.settings))
    try:
        return leader_of(admin, pipeline.settings.topic("pin"), 0)
    finally:
        admin.close()


def kill_leader_of_pin_0(pipeline) -> int:
    """SIGKILLs the broker leading partition 0 of the pin topic; returns its node id once it has exited."""
    leader = leader_of_pin_0(pipeline)
    pid = int((LOCAL_DIR / "run" / f"kafka-cluster-{leader}.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: process_gone(pid), 30, "the killed broker to exit", poll_s=0.2)
    return leader


def test_a_question_is_asked_again_while_a_broker_does_not_answer_then_fails_in_one_sentence():
    settings = Settings(kafka_bootstrap_servers=CLUSTER)
    answers = iter([KafkaConnectionError("111 ECONNREFUSED"), UnknownBrokerIdError(), {"answer": 1}])

    def question():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert asking_again(question, "reading", settings, delay_s=0.01) == {"answer": 1}

    def refused():
        raise KafkaConnectionError("111 ECONNREFUSED")

    with pytest.raises(KafkaUnavailableError, match=r"^reading at 127.0.0.1:19092,.*attempts\); last error: .*ECONNREFUSED"):
        asking_again(refused, "reading", settings, within_s=0.2, delay_s=0.01)

    def rejected():  # not a broker that is away: asked once
        rejected.calls += 1
        raise TopicAlreadyExistsError()

    rejected.calls = 0
    with pytest.raises(TopicAlreadyExistsError):
        asking_again(rejected, "creating", settings, delay_s=0.01)
    assert rejected.calls == 1


def test_topics_are_replicated_three_times_and_acknowledged_by_two(pipeline):
    admin = KafkaAdminClient(**client_config(pipeline.settings))
    try:
        def replicas(kind: str) -> list[int]:
            [described] = admin.describe_topics([pipeline.settings.topic(kind)])
            return sorted(len(p["replica_nodes"]) for p in described["partitions"])

        for kind in TOPIC_KINDS:
            # A broker answering just after the topics were created may not list all their partitions yet (the CI
            # trial of 2026-12-05 07:55 failed here once): what it lists in the end is what counts.
            try:
                wait_for(lambda kind=kind: replicas(kind) == [3, 3, 3], 30, f"3 partitions of {kind}", poll_s=0.5)
            except AssertionError:
                assert replicas(kind) == [3, 3, 3]
        topic = pipeline.settings.topic("pin")
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])["topic"][topic]
        assert configs["min.insync.replicas"]["value"] == "2"
    finally:
        admin.close()


def test_killing_a_partition_leader_mid_stream_loses_and_doubles_nothing(pipeline, spark):
    pipeline.post_emulated(posts=1_000, seed=21)
    cursor, _ = drain(pipeline, None)

    # post_emulated asserts that the producer reported every send delivered.
    posting = threading.Thread(target=pipeline.post_emulated, kwargs={"posts": 3_000, "seed": 22})
    posting.start()
    leader = kill_leader_of_pin_0(pipeline)
    posting.join()
    assert events_per_topic(pipeline.settings) == dict.fromkeys(pipeline.settings.topics.values(), 4_000)

    cursor, runs_without_it = drain(pipeline, cursor)  # two brokers left
    assert runs_without_it > 0
    assert leader_of_pin_0(pipeline) != leader  # a follower took over
    assert "running" in stack("up", f"kafka-cluster-{leader}")

    # A leader dying between the sensor's plan and the runs: the metadata names it until the cluster fences it,
    # and the runs must wait that out, each in one attempt. (lib/kafka.py's offset_bounds gave up when its metadata
    # request went to the dead broker: a failed run here, seen once in one try, and likely the failed CI run of
    # session 22. The request goes to a broker picked at random, so this can pass without the fix.)
    pipeline.post_emulated(posts=500, seed=23)
    configs, cursor = sensor_run_configs(pipeline, cursor, max_records=100_000)
    leader = kill_leader_of_pin_0(pipeline)
    for config in configs:
        pipeline.run_job("streaming_job", config)
    assert "running" in stack("up", f"kafka-cluster-{leader}")
    drain(pipeline, cursor)

    for kind in TOPIC_KINDS:
        topic = pipeline.settings.topic(kind)
        raw = delta.read_table(spark, pipeline.settings.table_path("raw", kind)).select("_partition", "_offset")
        rejects = (delta.read_table(spark, pipeline.settings.table_path("raw", "rejects"))
                   .where(f"_topic = '{topic}'").select("_partition", "_offset"))
        both = raw.union(rejects)
        assert both.count() == both.distinct().count() == 4_500, topic


def test_a_dead_broker_counts_no_more_once_fenced_topics_get_two_copies_or_none(pipeline):
    # kafka-python's DescribeCluster lists fenced brokers too: counted, they made a dead broker look live, so topics
    # were asked for 3 copies and the controller refused them (InvalidReplicationFactor, no sentence).
    ensure_topics(pipeline.settings)  # kept from the tests before; created when this one runs alone
    leader = kill_leader_of_pin_0(pipeline)
    admin = KafkaAdminClient(**client_config(pipeline.settings))
    try:
        # Asked again as ensure_topics asks: the request may go to the dead broker, refused at once.
        wait_for(lambda: asking_again(lambda: live_brokers(admin), "describing the cluster", pipeline.settings) == 2, 30,
                 "the controller to fence the killed broker", poll_s=0.5)
        asked_3 = dataclasses.replace(pipeline.settings, topic_prefix=pipeline.settings.topic_prefix + "-rf3",
                                      topic_replication=3)
        with pytest.raises(TopicReplicationError, match="lists 2 live brokers"):
            ensure_topics(asked_3)
        assert not set(asked_3.topics.values()) & set(admin.list_topics())
        unset = dataclasses.replace(pipeline.settings, topic_prefix=pipeline.settings.topic_prefix + "-rf")
        assert sorted(ensure_topics(unset)) == sorted(unset.topics.values())
        for topic in unset.topics.values():
            [described] = admin.describe_topics([topic])
            assert {len(p["replica_nodes"]) for p in described["partitions"]} == {2}, topic
    finally:
        admin.close()
        assert "running" in stack("up", f"kafka-cluster-{leader}")
