"""`kafka_microbatch_sensor`: turns new Kafka offsets into bounded micro-batch runs of streaming_job."""

import json
import time

import dagster as dg

from pinterest_dagster.defs.streaming.jobs import STREAMING_TAGS, streaming_job
from pinterest_dagster.lib.kafka import offset_bounds
from pinterest_dagster.lib.microbatch import parse_cursor, plan_microbatches, run_config, run_key
from pinterest_dagster.lib.resources import KafkaResource
from pinterest_dagster.settings import TOPIC_KINDS


POLL_SECONDS = 0.1  # how often a waiting tick asks the instance whether a run finished
KAFKA_POLL_SECONDS = 0.25  # how often it asks Kafka for new events

ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
]


def streaming_runs_in_flight(instance: dg.DagsterInstance) -> int:
    return instance.get_runs_count(dg.RunsFilter(tags=STREAMING_TAGS, statuses=ACTIVE_STATUSES))


def build_kafka_microbatch_sensor(
    max_records_per_run: int, max_in_flight: int = 1, interval_seconds: int = 1, wait_seconds: float = 4.0
) -> dg.SensorDefinition:
    """The sensor requests runs only while fewer than `max_in_flight` streaming runs are queued or
    running: new events then wait in Kafka and join the next run, so under load each micro-batch grows
    (up to `max_records_per_run`) instead of the queue filling with small runs.

    A tick that finds no free slot or no new event keeps watching for up to `wait_seconds` before it
    skips. The daemon evaluates sensors at most every 5 s, so without this a micro-batch would start
    on average 2.5 s after the previous one ended or after its first event arrived; with it, within
    a fraction of a second. Keep `wait_seconds` below 5 so consecutive ticks leave no gap.
    """

    @dg.sensor(
        name="kafka_microbatch_sensor",
        job=streaming_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"One streaming_job run per micro-batch of at most {max_records_per_run:,} new Kafka "
        f"offsets (pin, geo and user topics), {max_in_flight} at a time; each tick watches for up to "
        f"{wait_seconds:g} s.",
    )
    def kafka_microbatch_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource):
        topics = [kafka.topic(kind) for kind in TOPIC_KINDS]
        deadline = time.monotonic() + wait_seconds
        while True:
            free_slots = max_in_flight - streaming_runs_in_flight(context.instance)
            if free_slots > 0:
                bounds = {(tp.topic, tp.partition): b for tp, b in offset_bounds(kafka.settings(), topics).items()}
                batches, cursor = plan_microbatches(
                    parse_cursor(context.cursor), bounds, max_records_per_run, free_slots
                )
                if batches:
                    break
            if time.monotonic() >= deadline:
                return dg.SkipReason(
                    "no new events" if free_slots > 0 else f"{max_in_flight} streaming runs already queued or running"
                )
            time.sleep(POLL_SECONDS if free_slots <= 0 else KAFKA_POLL_SECONDS)
        for batch in batches:
            yield dg.RunRequest(run_key=run_key(batch), run_config=run_config(batch))
        context.update_cursor(json.dumps(cursor, sort_keys=True))

    return kafka_microbatch_sensor
