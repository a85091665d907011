"""The settings object reads DESIGN.md section 6 from the environment, and masks secrets."""

from __future__ import annotations

from pinterest_dagster.settings import LOCAL_DIR, Settings, mask_url


def test_defaults_are_the_embedded_local_stack():
    settings = Settings.from_env({})
    assert settings.lake_root == str(LOCAL_DIR / "lake")
    assert settings.kafka_bootstrap_servers == "localhost:9092"
    assert settings.topics == {"pin": "pinterest.pin", "geo": "pinterest.geo", "user": "pinterest.user"}
    assert settings.source_db_url == f"sqlite:///{LOCAL_DIR / 'pinterest.db'}"
    assert settings.spark_remote is None and settings.spark_master == "local[*]"


def test_every_variable_overrides_its_default():
    settings = Settings.from_env({
        "PINTEREST_LAKE_ROOT": "s3a://bucket/lake",
        "KAFKA_BOOTSTRAP_SERVERS": "b1:9092,b2:9092",
        "PINTEREST_TOPIC_PREFIX": "prod",
        "SOURCE_DB_URL": "mysql+pymysql://u:p@db:3306/pinterest_data",
        "SPARK_REMOTE": "sc://spark:15002",
        "SPARK_MASTER": "local[2]",
    })
    assert settings.table_path("raw", "pin") == "s3a://bucket/lake/raw/pin"
    assert settings.topic("geo") == "prod.geo"
    assert settings.kafka_bootstrap_servers == "b1:9092,b2:9092"
    assert settings.source_db_url.endswith("@db:3306/pinterest_data")
    assert (settings.spark_remote, settings.spark_master) == ("sc://spark:15002", "local[2]")


def test_mask_url_hides_only_the_password():
    assert mask_url("mysql+pymysql://user:s3cret@db:3306/x") == "mysql+pymysql://user:***@db:3306/x"
    assert mask_url("sqlite:///tmp/a.db") == "sqlite:///tmp/a.db"
