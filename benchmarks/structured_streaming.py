"""The same streaming work without Dagster: Spark Structured Streaming, and the Spark-source ceiling.

    .venv/bin/python -m benchmarks.structured_streaming drain --prefix bench-xxxx --lake DIR --max-offsets N
    .venv/bin/python -m benchmarks.structured_streaming latency --prefix bench-xxxx --lake DIR --max-offsets N \
        --rate POSTS_PER_S --seconds S [--history]

`drain` drains the backlog of the `<prefix>.*` topics with a Structured Streaming query that does what a
micro-batch run does, with the project's own functions: Kafka source -> foreachBatch: write the raw
tables idempotently (Delta's `txnAppId`/`txnVersion`, so a replayed batch is skipped), then merge the
touched keys into the cleaned tables (latest event wins) and the touched posters and trend windows into
the two realtime tables, `trigger(availableNow=True)`. A micro-batch run of the daemon also appends to
the ingestion log (its exactly-once record; here the checkpoint plays that part). Then the
ceiling: a plain count of the same offsets through Spark's Kafka source. `latency` runs the same query
with a 1 s processing-time trigger while the emulator posts at a fixed rate, and takes each pin event's
latency as benchmarks/streaming.py does for the daemon: from its Kafka timestamp to the moment the
merge that made it visible in cleaned/pin committed, for the events posted while it runs only. With
`--history` the topics already hold events (benchmarks/history.py): the query first drains them into its
lake (`availableNow`), then measures on that lake. Each prints one JSON line.

It runs in a process of its own with an in-process Spark session: a foreachBatch function on Spark
Connect would run in the server's Python, which does not have this checkout. Session start-up is not
timed, and the whole drain runs once into a throw-away lake first: the Dagster side connects to a
server whose JVM has long compiled the Kafka, Delta and MERGE code paths, so this side gets a warm JVM too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from benchmarks.common import percentiles, post
from pinterest_dagster.defs.clean.assets import latest_cleaned
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.ingestion import raw_layout
from pinterest_dagster.lib.kafka import ensure_topics, events_per_topic
from pinterest_dagster.lib.realtime_state import REALTIME_TABLES
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import TOPIC_KINDS, Settings
from pinterest_dagster.transforms.dedupe import newer_event_condition
from pinterest_dagster.transforms.parse import accepted_rows, classify_events, rejected_rows

APP_ID = "benchmarks.structured_streaming"


def kafka_source(reader, kafka: KafkaResource):
    topics = ",".join(kafka.topic(kind) for kind in TOPIC_KINDS)
    return reader.format("kafka").options(**kafka.spark_options()).option("subscribe", topics).option(
        "startingOffsets", "earliest")


def idempotent_append(df: DataFrame, lake: LakeResource, table: str, batch_id: int) -> None:
    """Delta skips a (txnAppId, txnVersion) it has committed: a batch replayed after a failure adds nothing.
    The tables have the layout of the daemon's raw tables (partitions, file statistics)."""
    writer = delta.writer(df, "append", **raw_layout(table))
    writer.option("txnAppId", APP_ID).option("txnVersion", batch_id).save(lake.path("raw", table))


def write_batch(kafka: KafkaResource, lake: LakeResource, pin_visible: Callable[[DataFrame], None] | None = None):
    """The foreachBatch function; `pin_visible` is called with the batch's raw pin rows once cleaned/pin committed."""

    def process(batch: DataFrame, batch_id: int) -> None:
        spark = batch.sparkSession
        batch = batch.persist()
        classified = {kind: classify_events(batch.where(F.col("topic") == kafka.topic(kind)), kind) for kind in TOPIC_KINDS}
        for kind, events in classified.items():
            idempotent_append(accepted_rows(events, kind), lake, kind, batch_id)
        rejects = rejected_rows(classified["pin"])
        for kind in TOPIC_KINDS[1:]:
            rejects = rejects.unionByName(rejected_rows(classified[kind]))
        idempotent_append(rejects, lake, "rejects", batch_id)
        for kind, events in classified.items():
            # As a micro-batch run does: the batch's latest event per key replaces an older stored one.
            delta.write_table(spark, latest_cleaned(kind, accepted_rows(events, kind)), lake.path("cleaned", kind),
                              "merge", ("ind",), matched_condition=newer_event_condition(), describe=False,
                              options=delta.MERGED_TABLE_PROPERTIES)
            if kind == "pin" and pin_visible is not None:
                pin_visible(accepted_rows(events, kind))
        # As the realtime assets do: the poster state and the trend windows the batch touched.
        raw_pin, batch_pin = delta.read_table(spark, lake.path("raw", "pin")), accepted_rows(classified["pin"], "pin")
        for table in REALTIME_TABLES.values():
            delta.write_table(spark, table.of_batch(spark, lake, raw_pin, batch_pin), lake.path("realtime", table.name),
                              "merge", table.merge_keys, describe=False, options=delta.MERGED_TABLE_PROPERTIES)
        batch.unpersist()

    return process


def start_query(spark, kafka: KafkaResource, lake: LakeResource, max_offsets: int, trigger: dict, pin_visible=None):
    """The checkpoint lives in the lake, so a new lake starts from the beginning of the topics."""
    return (
        kafka_source(spark.readStream, kafka).option("maxOffsetsPerTrigger", max_offsets).load()
        .writeStream.foreachBatch(write_batch(kafka, lake, pin_visible))
        .option("checkpointLocation", lake.path("_meta", "structured_streaming_checkpoint"))
        .trigger(**trigger).start()
    )


def drain(spark, kafka: KafkaResource, lake: LakeResource, max_offsets: int) -> float:
    """Seconds to drain the backlog."""
    started = time.perf_counter()
    start_query(spark, kafka, lake, max_offsets, {"availableNow": True}).awaitTermination()
    return time.perf_counter() - started


def post_to(settings: Settings, *args: str) -> None:
    post({**os.environ, "PINTEREST_TOPIC_PREFIX": settings.topic_prefix}, *args)


def latencies_while_posting(spark, settings: Settings, lake: LakeResource, args) -> list[float]:
    """Seconds from each pin event's Kafka timestamp to the cleaned/pin commit that made it visible."""
    kafka = KafkaResource.from_settings(settings)
    latencies: list[float] = []

    def pin_visible(pin_rows: DataFrame) -> None:
        visible = time.time()
        latencies.extend(visible - r[0] for r in pin_rows.select(F.col("_kafka_timestamp").cast("double")).collect())

    pin = settings.topic("pin")
    before = events_per_topic(settings)[pin]
    # The query starts from its checkpoint: after whatever an earlier drain into this lake read.
    query = start_query(spark, kafka, lake, args.max_offsets, {"processingTime": "1 second"}, pin_visible)
    post_to(settings, "--duration", str(args.seconds), "--rate", str(args.rate))
    produced = events_per_topic(settings)[pin] - before
    deadline = time.monotonic() + args.timeout
    while len(latencies) < produced and time.monotonic() < deadline and query.isActive:
        time.sleep(0.5)
    stop_between_batches(query)
    if len(latencies) != produced:
        raise SystemExit(f"only {len(latencies):,} of {produced:,} pin events reached cleaned/pin")
    return latencies


def count_through_kafka_source(spark, kafka: KafkaResource) -> tuple[float, int]:
    started = time.perf_counter()
    count = kafka_source(spark.read, kafka).option("endingOffsets", "latest").load().count()
    return time.perf_counter() - started, count


def stop_between_batches(query, timeout_s: float = 60) -> None:
    """Stop when no batch is running: interrupting a foreachBatch call made the stream thread die of a
    StackOverflowError in a regex while reporting the interruption."""
    deadline = time.monotonic() + timeout_s
    while query.status["isTriggerActive"] and time.monotonic() < deadline:
        time.sleep(0.1)
    query.stop()


def drain_command(spark, settings: Settings, args) -> dict:
    kafka, lake = KafkaResource.from_settings(settings), LakeResource.from_settings(settings)
    count_through_kafka_source(spark, kafka)
    drain(spark, kafka, LakeResource(root=f"{args.lake}_warm_up"), args.max_offsets)
    streaming_s = drain(spark, kafka, lake, args.max_offsets)
    count_s, count = count_through_kafka_source(spark, kafka)
    return {"structured_streaming_s": streaming_s, "spark_count_s": count_s, "spark_count": count}


def latency_command(spark, settings: Settings, args) -> dict:
    lake = LakeResource.from_settings(settings)
    drained = drain_history(spark, settings, lake, args.max_offsets) if args.history else warm_up(spark, settings, args)
    latencies = latencies_while_posting(spark, settings, lake, args)
    return {"pin_events": len(latencies), **percentiles(latencies), **drained}


def warm_up(spark, settings: Settings, args) -> dict:
    """The topics are empty until the emulator posts: the JVM warms up on a small backlog of topics of its own."""
    topics = dataclasses.replace(settings, topic_prefix=f"{settings.topic_prefix}-warm-up")
    ensure_topics(topics)
    post_to(topics, "--posts", "1000", "--rate", "0")
    drain(spark, KafkaResource.from_settings(topics), LakeResource(root=f"{args.lake}_warm_up"), args.max_offsets)
    return {}


def drain_history(spark, settings: Settings, lake: LakeResource, max_offsets: int) -> dict:
    """The topics' backlog into this lake, as the daemon's lake got it before its window (it warms the JVM up too);
    checked: every pin event of the backlog is in raw/pin."""
    pin_events = events_per_topic(settings)[settings.topic("pin")]
    seconds = drain(spark, KafkaResource.from_settings(settings), lake, max_offsets)
    raw_pin = delta.read_table(spark, lake.path("raw", "pin")).count()
    if raw_pin != pin_events:
        raise SystemExit(f"the history drain put {raw_pin:,} rows in raw/pin, the topic holds {pin_events:,} pin events")
    return {"history_drain_s": seconds, "history_pin_events": pin_events}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.structured_streaming", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("drain", "latency"):
        command = commands.add_parser(name)
        command.add_argument("--prefix", required=True)
        command.add_argument("--lake", required=True)
        command.add_argument("--max-offsets", type=int, required=True)
    latency = commands.choices["latency"]
    latency.add_argument("--rate", type=float, required=True, help="posts per second (3 events each)")
    latency.add_argument("--seconds", type=int, required=True)
    latency.add_argument("--timeout", type=float, default=600)
    latency.add_argument("--history", action="store_true",
                         help="first drain the events the topics already hold into the lake, instead of warm-up topics")
    args = parser.parse_args()
    settings = dataclasses.replace(Settings.from_env(), topic_prefix=args.prefix, lake_root=args.lake, spark_remote=None)
    spark = build_spark_session(settings, long_lived=True)  # runs the whole benchmark: C2 as the server has
    print(json.dumps({"drain": drain_command, "latency": latency_command}[args.command](spark, settings, args)))


if __name__ == "__main__":
    main()
