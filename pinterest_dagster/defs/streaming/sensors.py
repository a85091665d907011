"""`kafka_microbatch_sensor`: turns new Kafka offsets into bounded micro-batch runs of streaming_job."""

import json

import dagster as dg

from pinterest_dagster.defs.streaming.jobs import STREAMING_TAGS, streaming_job
from pinterest_dagster.lib.kafka import offset_bounds
from pinterest_dagster.lib.microbatch import parse_cursor, plan_microbatches, run_config, run_key
from pinterest_dagster.lib.resources import KafkaResource
from pinterest_dagster.settings import TOPIC_KINDS


ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
]


def streaming_runs_in_flight(instance: dg.DagsterInstance) -> int:
    return instance.get_runs_count(dg.RunsFilter(tags=STREAMING_TAGS, statuses=ACTIVE_STATUSES))


def build_kafka_microbatch_sensor(
    max_records_per_run: int, max_in_flight: int = 1, interval_seconds: int = 3
) -> dg.SensorDefinition:
    """The sensor requests runs only while fewer than `max_in_flight` streaming runs are queued or
    running: new events then wait in Kafka and join the next run, so under load each micro-batch grows
    (up to `max_records_per_run`) instead of the queue filling with small runs."""

    @dg.sensor(
        name="kafka_microbatch_sensor",
        job=streaming_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Every {interval_seconds} s: one streaming_job run per micro-batch of at most "
        f"{max_records_per_run:,} new Kafka offsets (pin, geo and user topics).",
    )
    def kafka_microbatch_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource):
        free_slots = max_in_flight - streaming_runs_in_flight(context.instance)
        if free_slots <= 0:
            return dg.SkipReason(f"{max_in_flight} streaming runs already queued or running")
        topics = [kafka.topic(kind) for kind in TOPIC_KINDS]
        bounds = {(tp.topic, tp.partition): b for tp, b in offset_bounds(kafka.settings(), topics).items()}
        batches, cursor = plan_microbatches(parse_cursor(context.cursor), bounds, max_records_per_run, free_slots)
        if not batches:
            return dg.SkipReason("no new events")
        for batch in batches:
            yield dg.RunRequest(run_key=run_key(batch), run_config=run_config(batch))
        context.update_cursor(json.dumps(cursor, sort_keys=True))

    return kafka_microbatch_sensor
