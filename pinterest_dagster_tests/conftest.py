"""Fixtures shared by the whole suite: one Spark session per test process, and isolated pipelines."""

from __future__ import annotations

import json
from dataclasses import dataclass

import dagster as dg
import pytest

from emulator import source_db
from emulator.cli import main as emulator_main
from emulator.posting import KafkaSink, PostingStats, load_posts, post_events
from pinterest_dagster.definitions import build_definitions
from pinterest_dagster.lib.kafka import ensure_topics, make_producer
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import Settings
from pinterest_dagster_tests.services import isolated_settings, require_kafka


@pytest.fixture(scope="session")
def spark():
    """An in-process Spark session with the project's jars (Delta, Kafka source)."""
    session = build_spark_session(Settings.from_env())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@dataclass
class Pipeline:
    settings: Settings
    defs: dg.Definitions
    source_url: str = ""

    def send(self, kind: str, events: list, timestamps_ms: list[int] | None = None) -> None:
        """Produce events (dicts as JSON, anything else as its text) keyed like the emulator does."""
        producer = make_producer(self.settings)
        for position, event in enumerate(events):
            if isinstance(event, dict):
                key = str(event.get("index", event.get("ind")))
                value = json.dumps(event).encode()
            else:
                key, value = "malformed", str(event).encode()
            timestamp = timestamps_ms[position] if timestamps_ms else None
            producer.send(self.settings.topic(kind), key=key.encode(), value=value, timestamp_ms=timestamp)
        producer.flush()
        producer.close()

    def post_emulated(self, posts: int, seed: int) -> int:
        """Post random rows of the module's source database as the emulator does; returns the posts sent."""
        stats = PostingStats()
        sink = KafkaSink(make_producer(self.settings), self.settings.topics, stats)
        post_events(load_posts(source_db.connect(self.source_url)), sink, stats, posts=posts, seed=seed)
        sink.close()
        assert sum(stats.failed.values()) == 0
        return stats.posts

    def run_job(self, name: str, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
        result = self.defs.resolve_job_def(name).execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), run_config=run_config
        )
        assert result.success
        return result

    def run_batch_job(self) -> dg.ExecuteInProcessResult:
        return self.run_job("batch_job")


@pytest.fixture(scope="module")
def pipeline(spark, tmp_path_factory, source_url) -> Pipeline:
    """A pipeline per test module: its own topics on the real broker, a temporary lake, a source DB."""
    settings = isolated_settings(lake_root=str(tmp_path_factory.mktemp("lake")))
    require_kafka(settings)
    ensure_topics(settings)
    return Pipeline(settings, build_definitions(settings), source_url)


@pytest.fixture(scope="module")
def source_url(tmp_path_factory) -> str:
    """A seeded SQLite source database (800 rows per table) for the module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('source') / 'source.db'}"
    assert emulator_main(["seed", "--rows", "800", "--seed", "3", "--db-url", url]) == 0
    return url
