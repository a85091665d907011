"""A pipeline under test: its own topics on the real broker, a temporary lake, a source database."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml

from emulator import source_db
from emulator.posting import KafkaSink, PostingStats, load_posts, post_events
from pinterest_dagster.definitions import build_definitions
from pinterest_dagster.lib.ingestion import OffsetRange
from pinterest_dagster.lib.kafka import end_offsets, ensure_topics, make_producer
from pinterest_dagster.lib.run_errors import failure_text
from pinterest_dagster.settings import REPO_ROOT, Settings
from pinterest_dagster_tests.services import isolated_settings, require_kafka


def execute_job_cli(name: str, run_config: dict, env: dict, workdir: Path, timeout_s: float = 900) -> None:
    """`dagster job execute` of the code location with this run config, in a process of its own."""
    config = workdir / "run_config.yaml"
    config.write_text(yaml.safe_dump(run_config))
    done = subprocess.run(
        [str(REPO_ROOT / ".venv/bin/dagster"), "job", "execute", "-m", "pinterest_dagster.definitions",
         "-j", name, "-c", str(config)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s,
    )
    if done.returncode != 0:
        # Dagster prints the cause among long tracebacks: show its error lines first, then the end.
        errors = dict.fromkeys(line for line in done.stderr.splitlines() if "Error:" in line and not line.startswith(" "))
        raise AssertionError(f"{name} failed: " + "\n".join(list(errors)[:8]) + "\n...\n" + done.stderr[-2000:])


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

    def ranges_sent_by(self, send: Callable[[], object]) -> list[OffsetRange]:
        """Calls `send`; returns the offset ranges of the events it produced, as a sensor would plan them."""
        topics = list(self.settings.topics.values())
        before = end_offsets(self.settings, topics)
        send()
        after = end_offsets(self.settings, topics)
        return [OffsetRange(tp.topic, tp.partition, before[tp], end) for tp, end in after.items() if end > before[tp]]

    def run_job(self, name: str, run_config: dict | None = None) -> dg.ExecuteInProcessResult | None:
        """Run a job to success: in this process, or with Spark Connect in a `dagster job execute`
        process of its own, as under the daemon (a process holding the tests' classic Spark session
        cannot open a Connect session). Returns the in-process result."""
        if self.settings.spark_remote:
            self._run_job_in_subprocess(name, run_config or {})
            return None
        result = self.defs.resolve_job_def(name).execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), run_config=run_config, raise_on_error=False
        )
        if not result.success:
            raise AssertionError(f"{name} failed: {failure_text(result)}")
        return result

    def _run_job_in_subprocess(self, name: str, run_config: dict) -> None:
        with tempfile.TemporaryDirectory() as home:
            env = {
                **os.environ, "DAGSTER_HOME": home, "SPARK_REMOTE": self.settings.spark_remote,
                "PINTEREST_TOPIC_PREFIX": self.settings.topic_prefix, "PINTEREST_LAKE_ROOT": self.settings.lake_root,
                "PINTEREST_SPARK_TUNING": self.settings.spark_tuning or "",
                "PINTEREST_SPARK_CONF": self.settings.spark_conf_file or "",
            }
            execute_job_cli(name, run_config, env, Path(home))

    def run_batch_job(self) -> dg.ExecuteInProcessResult | None:
        return self.run_job("batch_job")

    def run_rebuild_job(self) -> dg.ExecuteInProcessResult | None:
        return self.run_job("rebuild_job")


def make_pipeline(tmp_path_factory, source_url: str, **overrides) -> Pipeline:
    """A pipeline with its own topics on the real broker, a temporary lake and the given source DB."""
    settings = isolated_settings(lake_root=str(tmp_path_factory.mktemp("lake")), **overrides)
    require_kafka(settings)
    ensure_topics(settings)
    return Pipeline(settings, build_definitions(settings), source_url)
