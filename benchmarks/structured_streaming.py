"""The same streaming work without Dagster: Spark Structured Streaming, and the Spark-source ceiling.

    .venv/bin/python -m benchmarks.structured_streaming --prefix bench-xxxx --lake DIR --max-offsets N

Drains the backlog of the `<prefix>.*` topics with a Structured Streaming query that does what a
micro-batch run does, with the project's own functions: Kafka source -> foreachBatch: write the raw
tables idempotently (Delta's `txnAppId`/`txnVersion`, so a replayed batch is skipped), then merge the
touched keys into the cleaned tables (latest event wins), `trigger(availableNow=True)`. Then the
ceiling: a plain count of the same offsets through Spark's Kafka source. It prints one JSON line.

It runs in a process of its own with an in-process Spark session: a foreachBatch function on Spark
Connect would run in the server's Python, which does not have this checkout. Session start-up is not
timed, and the whole drain runs once into a throw-away lake first: the Dagster side connects to a
server whose JVM has long compiled the Kafka, Delta and MERGE code paths, so this side gets a warm JVM too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pinterest_dagster.defs.clean.assets import latest_cleaned
from pinterest_dagster.lib import delta
from pinterest_dagster.lib.resources import KafkaResource, LakeResource
from pinterest_dagster.lib.spark import build_spark_session
from pinterest_dagster.settings import TOPIC_KINDS, Settings
from pinterest_dagster.transforms.incremental import rows_sharing
from pinterest_dagster.transforms.parse import KEY_COLUMN, accepted_rows, classify_events, parse_key, rejected_rows

APP_ID = "benchmarks.structured_streaming"


def kafka_source(reader, kafka: KafkaResource):
    topics = ",".join(kafka.topic(kind) for kind in TOPIC_KINDS)
    return reader.format("kafka").options(**kafka.spark_options()).option("subscribe", topics).option(
        "startingOffsets", "earliest")


def idempotent_append(df: DataFrame, path: str, batch_id: int) -> None:
    """Delta skips a (txnAppId, txnVersion) it has committed: a batch replayed after a failure adds nothing."""
    df.write.format("delta").mode("append").option("txnAppId", APP_ID).option("txnVersion", batch_id).save(path)


def write_batch(kafka: KafkaResource, lake: LakeResource):
    def process(batch: DataFrame, batch_id: int) -> None:
        spark = batch.sparkSession
        batch = batch.persist()
        classified = {kind: classify_events(batch.where(F.col("topic") == kafka.topic(kind)), kind) for kind in TOPIC_KINDS}
        for kind, events in classified.items():
            idempotent_append(accepted_rows(events, kind), lake.path("raw", kind), batch_id)
        rejects = rejected_rows(classified["pin"])
        for kind in TOPIC_KINDS[1:]:
            rejects = rejects.unionByName(rejected_rows(classified[kind]))
        idempotent_append(rejects, lake.path("raw", "rejects"), batch_id)
        for kind, events in classified.items():
            # As a micro-batch run does: every raw event of a touched key, so the latest wins across batches.
            key = parse_key(F.col(KEY_COLUMN[kind]))
            raw = delta.read_table(spark, lake.path("raw", kind))
            touched = rows_sharing(raw, accepted_rows(events, kind), key)
            delta.write_table(spark, latest_cleaned(kind, touched), lake.path("cleaned", kind), "merge", ("ind",),
                              describe=False)
        batch.unpersist()

    return process


def drain(spark, kafka: KafkaResource, lake: LakeResource, max_offsets: int) -> float:
    """Seconds to drain the backlog; the checkpoint lives in the lake, so a new lake starts from the beginning."""
    started = time.perf_counter()
    query = (
        kafka_source(spark.readStream, kafka).option("maxOffsetsPerTrigger", max_offsets).load()
        .writeStream.foreachBatch(write_batch(kafka, lake))
        .option("checkpointLocation", lake.path("_meta", "structured_streaming_checkpoint"))
        .trigger(availableNow=True).start()
    )
    query.awaitTermination()
    return time.perf_counter() - started


def count_through_kafka_source(spark, kafka: KafkaResource) -> tuple[float, int]:
    started = time.perf_counter()
    count = kafka_source(spark.read, kafka).option("endingOffsets", "latest").load().count()
    return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--lake", required=True)
    parser.add_argument("--max-offsets", type=int, required=True)
    args = parser.parse_args()
    settings = dataclasses.replace(Settings.from_env(), topic_prefix=args.prefix, lake_root=args.lake, spark_remote=None)
    spark = build_spark_session(settings)
    kafka, lake = KafkaResource.from_settings(settings), LakeResource(root=settings.lake_root)
    count_through_kafka_source(spark, kafka)
    drain(spark, kafka, LakeResource(root=f"{args.lake}_warm_up"), args.max_offsets)
    streaming_s = drain(spark, kafka, lake, args.max_offsets)
    count_s, count = count_through_kafka_source(spark, kafka)
    print(json.dumps({"structured_streaming_s": streaming_s, "spark_count_s": count_s, "spark_count": count}))


if __name__ == "__main__":
    main()
