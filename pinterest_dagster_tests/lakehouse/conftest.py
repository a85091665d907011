"""A pipeline of its own per test module: isolated topics on the real broker, a temporary lake."""

from __future__ import annotations

import json
from dataclasses import dataclass

import dagster as dg
import pytest

from pinterest_dagster.definitions import build_definitions
from pinterest_dagster.lib.kafka import ensure_topics, make_producer
from pinterest_dagster.settings import Settings
from pinterest_dagster_tests.services import isolated_settings, require_kafka


@dataclass
class Pipeline:
    settings: Settings
    defs: dg.Definitions

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

    def run_batch_job(self) -> dg.ExecuteInProcessResult:
        result = self.defs.resolve_job_def("batch_job").execute_in_process(instance=dg.DagsterInstance.ephemeral())
        assert result.success
        return result


@pytest.fixture(scope="module")
def pipeline(spark, tmp_path_factory) -> Pipeline:
    settings = isolated_settings(lake_root=str(tmp_path_factory.mktemp("lake")))
    require_kafka(settings)
    ensure_topics(settings)
    return Pipeline(settings, build_definitions(settings))
