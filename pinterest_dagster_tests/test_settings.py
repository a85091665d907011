"""The settings object reads docs/architecture.md section 6 from the environment, refuses Kafka security settings
that cannot work, and never prints secrets."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from dagster._core.remote_representation.external_data import ResourceConfigEnvVarSnap, RepositorySnap
from dagster._serdes import serialize_value

from pinterest_dagster.definitions import build_definitions
from pinterest_dagster.lib.kafka import topic_replication
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import connect_server_args, spark_config
from pinterest_dagster.settings import LOCAL_DIR, KafkaSecurity, Secret, Settings, SettingsError, mask_url


def test_defaults_are_the_embedded_local_stack():
    settings = Settings.from_env({})
    assert settings.lake_root == str(LOCAL_DIR / "lake")
    assert settings.kafka_bootstrap_servers == "localhost:9092"
    assert settings.topics == {"pin": "pinterest.pin", "geo": "pinterest.geo", "user": "pinterest.user"}
    assert settings.source_db_url == f"sqlite:///{LOCAL_DIR / 'pinterest.db'}"
    assert settings.spark_remote is None and settings.spark_master == "local[*]"


def test_a_relative_lake_root_is_made_absolute(tmp_path, monkeypatch):
    # Delta SQL (delta.`path`) does not take a relative path, and a Spark Connect server would resolve
    # one against its own working directory: the root is resolved where the user gave it.
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({"PINTEREST_LAKE_ROOT": "lake"}).lake_root == str(tmp_path / "lake")
    assert Settings.from_env({"PINTEREST_LAKE_ROOT": "s3a://bucket/lake"}).lake_root == "s3a://bucket/lake"


def test_every_variable_overrides_its_default():
    settings = Settings.from_env({
        "PINTEREST_LAKE_ROOT": "s3a://bucket/lake",
        "KAFKA_BOOTSTRAP_SERVERS": "b1:9092,b2:9092",
        "PINTEREST_TOPIC_PREFIX": "prod",
        "SOURCE_DB_URL": "mysql+pymysql://u:p@db:3306/pinterest_data",
        "SPARK_REMOTE": "sc://spark:15002",
        "SPARK_MASTER": "local[2]",
        "PINTEREST_SPARK_CONNECT_TIMEOUT_SECONDS": "30",
        "PINTEREST_TOPIC_REPLICATION": "3",
    })
    assert settings.table_path("raw", "pin") == "s3a://bucket/lake/raw/pin"
    assert settings.topic_replication == 3
    assert settings.topic("geo") == "prod.geo"
    assert settings.kafka_bootstrap_servers == "b1:9092,b2:9092"
    assert settings.source_db_url.endswith("@db:3306/pinterest_data")
    assert (settings.spark_remote, settings.spark_master) == ("sc://spark:15002", "local[2]")
    assert settings.spark_connect_timeout_s == 30
    assert build_definitions(settings).resources["pyspark"].connect_timeout_s == 30


@pytest.mark.parametrize("value, phrase", [("three", "PINTEREST_TOPIC_REPLICATION=three is not a whole number"),
                                           ("3_0", "PINTEREST_TOPIC_REPLICATION=3_0 is not a whole number"),
                                           ("+3", "PINTEREST_TOPIC_REPLICATION=+3 is not a whole number"),
                                           ("²", "PINTEREST_TOPIC_REPLICATION=² is not a whole number"),
                                           ("0", "PINTEREST_TOPIC_REPLICATION=0: a topic needs at least 1 copy")])
def test_a_topic_replication_that_cannot_be_is_refused(value, phrase):
    with pytest.raises(SettingsError, match=re.escape(phrase)):
        Settings.from_env({"PINTEREST_TOPIC_REPLICATION": value})


def test_topics_get_three_copies_acknowledged_by_two_or_as_many_as_the_brokers_or_as_set():
    assert topic_replication(5) == (3, {"min.insync.replicas": "2"})
    assert topic_replication(3) == (3, {"min.insync.replicas": "2"})
    assert topic_replication(2) == (2, {})
    assert topic_replication(1) == (1, {})
    assert topic_replication(2, wanted=3) == (3, {"min.insync.replicas": "2"})  # ensure_topics refuses it
    assert topic_replication(5, wanted=1) == (1, {})


def test_mask_url_hides_only_the_password():
    assert mask_url("mysql+pymysql://user:s3cret@db:3306/x") == "mysql+pymysql://user:***@db:3306/x"
    assert mask_url("sqlite:///tmp/a.db") == "sqlite:///tmp/a.db"


SCRAM_ENV = {
    "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    "KAFKA_SASL_MECHANISM": "scram-sha-512",
    "KAFKA_SASL_USERNAME": "pinterest",
    "KAFKA_SASL_PASSWORD": "pa55-word",
}


def test_kafka_is_plaintext_without_credentials_by_default():
    assert Settings.from_env({}).kafka_security == KafkaSecurity()
    assert KafkaSecurity().protocol == "PLAINTEXT" and KafkaSecurity().sasl_mechanism is None


def test_kafka_security_variables_are_read_case_insensitively(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    security = Settings.from_env({**SCRAM_ENV, "KAFKA_SSL_CAFILE": str(ca)}).kafka_security
    assert (security.protocol, security.sasl_mechanism, security.sasl_username) == ("SASL_SSL", "SCRAM-SHA-512", "pinterest")
    assert security.sasl_password == Secret("pa55-word", "KAFKA_SASL_PASSWORD")
    assert security.ssl_cafile == str(ca)


@pytest.mark.parametrize(
    "env, phrase",
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL=TLS is not one of PLAINTEXT, SSL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "SASL_SSL needs KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SASL_MECHANISM": "PLAIN"}, "KAFKA_SASL_MECHANISM=PLAIN needs KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        ({**SCRAM_ENV, "KAFKA_SASL_USERNAME": ""}, "SCRAM-SHA-512 needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        ({**SCRAM_ENV, "KAFKA_SASL_PASSWORD": ""}, "SCRAM-SHA-512 needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        ({**SCRAM_ENV, "KAFKA_SASL_MECHANISM": "SCRAM-SHA-1"}, "SCRAM-SHA-1 is not one of PLAIN"),
        ({**SCRAM_ENV, "KAFKA_SASL_MECHANISM": "OAUTHBEARER"}, "OAUTHBEARER is not supported"),
        ({**SCRAM_ENV, "KAFKA_SASL_MECHANISM": "AWS_MSK_IAM"}, "AWS_MSK_IAM does not use them"),
        ({"KAFKA_SASL_USERNAME": "pinterest", "KAFKA_SASL_PASSWORD": "x"}, "KAFKA_SASL_MECHANISM=(unset) does not use them"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "AWS_MSK_IAM"},
            "AWS_MSK_IAM needs KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        ),
        ({"KAFKA_SSL_CAFILE": "/etc/hosts"}, "KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use TLS"),
        ({**SCRAM_ENV, "KAFKA_SSL_CAFILE": "/nowhere/ca.pem"}, "KAFKA_SSL_CAFILE=/nowhere/ca.pem is not a file"),
    ],
)
def test_kafka_security_combinations_that_cannot_work_are_refused(env, phrase):
    with pytest.raises(SettingsError, match=re.escape(phrase)) as refused:
        Settings.from_env(env)
    assert "pa55-word" not in str(refused.value)


def test_passwords_never_show_in_repr_str_or_the_dagster_resource():
    settings = Settings.from_env({**SCRAM_ENV, "SOURCE_DB_URL": "mysql+pymysql://u:db-pa55@db:3306/x"})
    secret = settings.kafka_security.sasl_password
    assert secret.value == "pa55-word"
    printed = [repr(settings), str(settings), repr(secret), str(secret), f"{secret}", repr(settings.kafka_security)]
    assert not any("pa55-word" in text or "db-pa55" in text for text in printed), printed
    assert "u:***@db" in repr(settings)

    # The UI shows each resource's configuration from the code location's snapshot: the password is there
    # only as its variable's name.
    snapshot = RepositorySnap.from_def(build_definitions(settings).get_repository_def())
    kafka = next(resource for resource in snapshot.resources if resource.name == "kafka")
    assert kafka.configured_values["sasl_password"] == ResourceConfigEnvVarSnap(name="KAFKA_SASL_PASSWORD")
    assert "pa55-word" not in serialize_value(snapshot)
    direct = KafkaResource.from_settings(
        Settings(kafka_security=replace(settings.kafka_security, sasl_password=Secret("pa55-word")))
    )
    assert "pa55-word" not in repr(direct) + str(direct)


def test_the_s3_endpoint_and_region_are_the_variables_boto3_reads():
    env = {"PINTEREST_LAKE_ROOT": "s3a://lake-bucket/prod", "AWS_ENDPOINT_URL": "http://minio:9000",
           "AWS_DEFAULT_REGION": "eu-west-1"}
    settings = Settings.from_env(env)
    assert (settings.lake_on_s3, settings.s3_endpoint_url, settings.aws_region) == (True, "http://minio:9000", "eu-west-1")
    # The S3-specific and newer names win, as in boto3.
    env.update(AWS_ENDPOINT_URL_S3="http://s3.local:9000", AWS_REGION="us-east-2")
    assert (Settings.from_env(env).s3_endpoint_url, Settings.from_env(env).aws_region) == ("http://s3.local:9000", "us-east-2")


def test_spark_and_boto3_get_the_same_s3_endpoint_and_region_but_never_credentials():
    env = {"PINTEREST_LAKE_ROOT": "s3a://lake-bucket/prod", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
           "AWS_REGION": "us-east-1", "AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    settings = Settings.from_env(env)
    lake = LakeResource.from_settings(settings)
    assert (lake.s3.endpoint_url, lake.s3.region_name) == ("http://127.0.0.1:9000", "us-east-1")
    in_process = spark_config(replace(settings, jars_dir=LOCAL_DIR / "jars"))
    assert in_process["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert in_process["spark.hadoop.fs.s3a.endpoint.region"] == "us-east-1"
    assert in_process["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert any("hadoop-aws" in jar for jar in in_process["spark.jars"].split(","))
    connect = spark_config(replace(settings, spark_remote="sc://spark:15002"))
    assert connect["fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert "s3cr3t" not in repr(in_process) + repr(connect)


def test_a_local_lake_has_no_s3_resource_or_s3a_settings():
    settings = Settings.from_env({})
    assert LakeResource.from_settings(settings).s3 is None
    assert not [key for key in spark_config(settings) if "s3a" in key]


def test_an_s3_scheme_hadoop_aws_does_not_serve_is_refused_with_the_fix():
    with pytest.raises(SettingsError, match="write s3a://bucket/lake"):
        Settings.from_env({"PINTEREST_LAKE_ROOT": "s3://bucket/lake"})


def test_the_local_connect_server_releases_idle_sessions_and_clients_do_not_set_it():
    args = connect_server_args(Settings.from_env())
    assert "spark.connect.session.manager.defaultSessionTimeout=10m" in args
    remote = spark_config(replace(Settings.from_env(), spark_remote="sc://spark:15002"))
    assert not [key for key in remote if key.startswith("spark.connect.")]


def test_the_connect_retry_policy_waits_about_the_timeout_in_all():
    from pinterest_dagster.lib.spark import connect_retry_policy

    for timeout_s in (10, 120, 600):
        policy = connect_retry_policy(timeout_s)
        waits = [min(50 * 4 ** n, policy.max_backoff) for n in range(policy.max_retries)]
        assert timeout_s * 1000 <= sum(waits) < timeout_s * 1000 + policy.max_backoff
