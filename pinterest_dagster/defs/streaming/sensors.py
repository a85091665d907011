"""`kafka_microbatch_sensor`: turns new Kafka offsets into bounded micro-batch runs of streaming_job."""

import json

import dagster as dg

from pinterest_dagster.defs.streaming.jobs import streaming_job
from pinterest_dagster.lib.kafka import offset_bounds
from pinterest_dagster.lib.microbatch import parse_cursor, plan_microbatches, run_config, run_key
from pinterest_dagster.lib.resources import KafkaResource
from pinterest_dagster.settings import TOPIC_KINDS


def build_kafka_microbatch_sensor(
    max_records_per_run: int, max_runs_per_tick: int = 4, interval_seconds: int = 3
) -> dg.SensorDefinition:
    @dg.sensor(
        name="kafka_microbatch_sensor",
        job=streaming_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Every {interval_seconds} s: one streaming_job run per micro-batch of at most "
        f"{max_records_per_run:,} new Kafka offsets (pin, geo and user topics).",
    )
    def kafka_microbatch_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource):
        topics = [kafka.topic(kind) for kind in TOPIC_KINDS]
        bounds = {(tp.topic, tp.partition): b for tp, b in offset_bounds(kafka.settings(), topics).items()}
        batches, cursor = plan_microbatches(
            parse_cursor(context.cursor), bounds, max_records_per_run, max_runs_per_tick
        )
        if not batches:
            return dg.SkipReason("no new events")
        for batch in batches:
            yield dg.RunRequest(run_key=run_key(batch), run_config=run_config(batch))
        context.update_cursor(json.dumps(cursor, sort_keys=True))

    return kafka_microbatch_sensor
