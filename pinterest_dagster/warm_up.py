"""Warm a Spark Connect server that has just started, so that the first micro-batches of the day are as
fast as the later ones.

    python -m pinterest_dagster.warm_up [--rounds 2] [--posts 1000]

A new server's JVM loads Spark's, Delta's and the Kafka source's classes on first use, compiles each of
the pipeline's query plans to Java (whole-stage code generation, cached per plan shape) and has not
JIT-compiled its hot code yet: its first micro-batch took up to twice as long as later ones
(docs/benchmarks.md, "The first minutes after make up"). `infra/stack.sh`
runs this right after it starts the local Connect server (`make up`): a few real `streaming_job` runs of
generated events, on topics and a lake of their own (`<prefix>-warm-up.*`, a temporary folder), both
deleted afterwards. Nothing touches the pipeline's topics or lake.

It needs Kafka; without it, it does nothing and says so. `infra/stack.sh` skips it with PINTEREST_WARM_UP=0.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import tempfile
import time

import dagster as dg
from kafka import KafkaAdminClient

from emulator.generator import generate_posts
from emulator.posting import KINDS, KafkaSink, PostingStats, encode_row
from emulator.source_db import SOURCE_TABLES
from pinterest_dagster.definitions import build_definitions
from pinterest_dagster.lib.ingestion import OffsetRange
from pinterest_dagster.lib.kafka import KafkaUnavailableError, client_config, connect_with_retry, end_offsets, ensure_topics, make_producer
from pinterest_dagster.lib.microbatch import run_config
from pinterest_dagster.lib.run_errors import failure_text
from pinterest_dagster.settings import Settings

# The runs' own event log is not the point here: only their errors reach the console.
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def post_generated(settings: Settings, posts: int, first_id: int) -> None:
    """`posts` generated posts (pin, geo and user events, keyed as the emulator keys them)."""
    stats = PostingStats()
    sink = KafkaSink(make_producer(settings), settings.topics, stats)
    for rows in generate_posts(posts, seed=first_id, first_id=first_id):
        for kind, row in zip(KINDS, rows):
            sink.send(kind, str(row[SOURCE_TABLES[kind][1]]).encode(), encode_row(row))
    sink.close()
    if sum(stats.failed.values()):
        raise SystemExit(f"warm-up: Kafka refused events: {stats.errors[:3]}")


def warm_up(settings: Settings, rounds: int, posts: int) -> list[float]:
    """`rounds` micro-batches of `posts` posts each through `streaming_job`; the seconds each run took."""
    topics = list(settings.topics.values())
    ensure_topics(settings)
    job = build_definitions(settings).resolve_job_def("streaming_job")
    seconds = []
    for n in range(rounds):
        before = end_offsets(settings, topics)
        post_generated(settings, posts, first_id=n * posts // 2)  # half the keys seen before: merges that match
        after = end_offsets(settings, topics)
        batch = [OffsetRange(tp.topic, tp.partition, before[tp], end) for tp, end in after.items() if end > before[tp]]
        started = time.monotonic()
        result = job.execute_in_process(run_config={**run_config(batch), **QUIET}, instance=dg.DagsterInstance.ephemeral(),
                                        raise_on_error=False)
        if not result.success:
            raise SystemExit(f"warm-up: a micro-batch failed:\n{failure_text(result)}")
        seconds.append(time.monotonic() - started)
        print(f"warm-up: micro-batch {n + 1} of {rounds} took {seconds[-1]:.1f} s", flush=True)
    return seconds


def delete_topics(settings: Settings) -> None:
    admin = connect_with_retry(lambda: KafkaAdminClient(**client_config(settings)), settings)
    try:
        admin.delete_topics([t for t in settings.topics.values() if t in admin.list_topics()])
    finally:
        admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinterest_dagster.warm_up", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="micro-batches to run")
    parser.add_argument("--posts", type=int, default=1000, help="posts per micro-batch (3 events each)")
    args = parser.parse_args(argv)
    base = Settings.from_env()
    if not base.spark_remote:
        print("warm-up: skipped, SPARK_REMOTE names no Spark Connect server to warm", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="pinterest-warm-up-") as lake:
        settings = dataclasses.replace(base, topic_prefix=f"{base.topic_prefix}-warm-up", lake_root=lake)
        started = time.monotonic()
        try:
            warm_up(settings, args.rounds, args.posts)
        except KafkaUnavailableError as exc:
            # Unreachable, or (TopicReplicationError) fewer live brokers than PINTEREST_TOPIC_REPLICATION asks: its sentence says which.
            print(f"warm-up: skipped: {exc}", file=sys.stderr)
            return 0
        except BaseException:
            # A failed micro-batch leaves no topics behind either; the error that stopped it is the one to show.
            with contextlib.suppress(Exception):
                delete_topics(settings)
            raise
        delete_topics(settings)
    print(f"warm-up: {args.rounds} micro-batches on {settings.spark_remote} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
