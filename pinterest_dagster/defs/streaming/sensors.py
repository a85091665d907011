"""`kafka_microbatch_sensor`: turns new Kafka offsets into bounded micro-batch runs of streaming_job.

It also keeps the lake free of gaps (docs/architecture.md section 5): a micro-batch that failed past its retries
is planned again, and every `heal_interval_seconds` one micro-batch also ingests whatever retained
offsets are missing below what was ingested (`heal_gaps`, in lib/offsets.py's sense).
"""

import time

import dagster as dg
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from pinterest_dagster.defs.streaming.jobs import streaming_job
from pinterest_dagster.lib.kafka import offset_bounds, topic_ids
from pinterest_dagster.lib.microbatch import (
    cursor_reset_command, cursor_text, deleted_before_ingestion, moved_back, parse_cursor, parse_failures_checked_at,
    parse_topic_ids, plan_microbatches, recreated_topics, run_config, run_key, without_topics,
)
from pinterest_dagster.lib.offsets import ranges_text
from pinterest_dagster.lib.resources import KafkaResource
from pinterest_dagster.lib.streaming_runs import (
    ACTIVE_STATUSES, HEALS_TAG, REPLANS_TAG, RETRY_GRACE_SECONDS, SENSOR_NAME, configured_ranges, failures_horizon,
    run_group_id, runs_failed_for_good, seconds_since_last_heal, streaming_runs_in_flight,
)
from pinterest_dagster.settings import TOPIC_KINDS

POLL_SECONDS = 0.1  # how often a waiting tick asks the instance whether a run finished
KAFKA_POLL_SECONDS = 0.25  # how often it asks Kafka for new events
HEAL_INTERVAL_SECONDS = 60


def replan_request(failed: dg.DagsterRun) -> dg.RunRequest:
    """The ranges of a run group that failed for good, in a new micro-batch that also heals gaps."""
    group = run_group_id(failed)
    return dg.RunRequest(
        run_key=f"replan-{group}", run_config=run_config(configured_ranges(failed), heal_gaps=True),
        tags={REPLANS_TAG: group, HEALS_TAG: "true"},
    )


def unseen_run_key(instance: dg.DagsterInstance, key: str) -> tuple[str, list[dg.DagsterRun]]:
    """`key`, or where a finished run of this sensor has it (a cursor moved back by hand over ranges planned before),
    a key derived from that run's id, again until one is unseen; and those runs. Dagster launches no run for a key it
    has seen, in silence. A run still queued or running with the key, or its retry, keeps it: it ingests those
    ranges (the tick after a daemon crash asks again, and Dagster launches that run or leaves it to go on)."""
    earlier = []
    while True:
        runs = [run for run in instance.get_runs(dg.RunsFilter(tags={RUN_KEY_TAG: key}))  # Dagster's own query
                if run.tags.get(SENSOR_NAME_TAG) == SENSOR_NAME]
        # In flight, the run or its retry (which carries its key and ranges) ingests them: Dagster skips the request.
        if not runs or any(run.status in ACTIVE_STATUSES for run in runs):
            return key, earlier
        earlier.append(runs[0])
        key = f"{key}-again-{runs[0].run_id}"


def moved_back_message(cursor, bounds, recreated=frozenset(), topic_ids=None, failures_checked_at=None) -> str:
    back = moved_back(cursor, bounds, recreated)
    partitions = ", ".join(f"{t}[{p}] (end {end:,}, cursor {at:,})" for (t, p), (at, end) in back.items())
    how = "offsets went backwards" + (f", or the topic's id changed ({', '.join(sorted(recreated))})" if recreated else "")
    return (
        f"{partitions}: the topic was deleted and recreated ({how}), and nothing more is "
        f"ingested from it until its cursor is reset. The lake keeps the old topic's events; the new topic's "
        f"replace those at the same offsets. To reset (with the sensor stopped, as `--set` replaces the whole "
        f"cursor): {cursor_reset_command(cursor, bounds, SENSOR_NAME, recreated, topic_ids, failures_checked_at)}"
    )


def deleted_message(cursor, bounds) -> str:
    """Names the offsets retention deleted before they were read ("" when none): never skipped in silence."""
    deleted = deleted_before_ingestion(cursor, bounds)
    if not deleted:
        return ""
    return (f"retention deleted {sum(r.size for r in deleted):,} offsets before they were ingested: "
            f"{ranges_text(deleted)} (the next micro-batch of each partition reports them as lost)")


def build_kafka_microbatch_sensor(
    max_records_per_run: int, max_in_flight: int = 1, interval_seconds: int = 1, wait_seconds: float = 4.0,
    heal_interval_seconds: float = HEAL_INTERVAL_SECONDS, retry_grace_seconds: float = RETRY_GRACE_SECONDS,
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
        name=SENSOR_NAME,
        job=streaming_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"One streaming_job run per micro-batch of at most {max_records_per_run:,} new Kafka "
        f"offsets (pin, geo and user topics), {max_in_flight} at a time; each tick watches for up to "
        f"{wait_seconds:g} s. A micro-batch that failed past its retries is planned again, and every "
        f"{heal_interval_seconds:g} s one micro-batch also ingests the gaps it finds below what was ingested.",
    )
    def kafka_microbatch_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource):
        topics = [kafka.topic(kind) for kind in TOPIC_KINDS]
        cursor, known_ids = parse_cursor(context.cursor), parse_topic_ids(context.cursor)
        # Failures are looked for from the last tick that looked, kept in the cursor: after a daemon outage, or
        # ticks that found no free slot, those of the hours before are still found.
        checked_at = parse_failures_checked_at(context.cursor) or context.last_tick_completion_time
        deadline = time.monotonic() + wait_seconds
        replans, bounds, ids, recreated, new_cursor = None, {}, None, set(), cursor

        def compare_ids() -> None:
            """Kafka's topic ids now, and the topics whose id is not the one the cursor was planned against."""
            nonlocal ids, recreated
            ids = topic_ids(kafka.settings(), topics)
            recreated = recreated_topics(known_ids, ids)

        while True:
            free_slots = max_in_flight - streaming_runs_in_flight(context.instance)
            if free_slots > 0:
                if replans is None:
                    looked_at = time.time()
                    replans = runs_failed_for_good(context.instance, retry_grace_seconds, failures_horizon(checked_at))
                    checked_at = looked_at
                bounds = {(tp.topic, tp.partition): b for tp, b in offset_bounds(kafka.settings(), topics).items()}
                batches, new_cursor = plan_microbatches(cursor, without_topics(bounds, recreated), max_records_per_run, free_slots)
                if batches:
                    compare_ids()  # before the cursor moves: are these still the topics it was planned against?
                    if recreated:
                        batches, new_cursor = plan_microbatches(
                            cursor, without_topics(bounds, recreated), max_records_per_run, free_slots)
                if batches or replans:
                    break
            if time.monotonic() >= deadline:
                if replans is not None:  # it looked for failures: when, for the next tick
                    context.update_cursor(cursor_text(cursor, known_ids, checked_at))
                if ids is None and bounds:  # nothing to plan: a topic recreated up to its old end is still named
                    compare_ids()
                if moved_back(cursor, bounds, recreated):
                    return dg.SkipReason(moved_back_message(cursor, bounds, recreated, known_ids, checked_at))
                if free_slots <= 0:
                    return dg.SkipReason(f"{max_in_flight} streaming runs already queued or running")
                return dg.SkipReason("; ".join(filter(None, [
                    "no new events", deleted_message(cursor, without_topics(bounds, recreated))])))
            time.sleep(POLL_SECONDS if free_slots <= 0 else KAFKA_POLL_SECONDS)
        if replans and ids is None:  # a re-plan reads its ranges again: of the same topics?
            compare_ids()
        # The ids of a recreated topic stay the old ones until its cursor is reset, even where the cursor had none
        # (a cursor from before topic ids): its end gone backwards shows it.
        stale = recreated | {topic for topic, _ in moved_back(cursor, bounds)}
        kept_ids = {**known_ids, **{t: i for t, i in (ids or {}).items() if t not in stale}}
        if moved_back(new_cursor, bounds, recreated):  # the command names the cursor as this tick leaves it
            context.log.warning(moved_back_message(new_cursor, bounds, recreated, kept_ids, checked_at))
        if deleted := deleted_message(cursor, without_topics(bounds, recreated)):
            context.log.warning(deleted)
        for failed in replans:
            if gone := sorted({r.topic for r in configured_ranges(failed)} & recreated):
                context.log.warning(f"not planning again the ranges of run {failed.run_id}: {', '.join(gone)} was deleted "
                                    "and recreated since, and its new offsets are planned once its cursor is reset")
                continue
            context.log.warning(f"planning again the ranges of run {failed.run_id}, which failed past its retries: "
                                f"{ranges_text(configured_ranges(failed))}")
            yield replan_request(failed)
        heal = seconds_since_last_heal(context.instance) >= heal_interval_seconds
        for batch in batches:
            key, earlier = unseen_run_key(context.instance, run_key(batch, ids))
            if earlier:
                context.log.warning(
                    f"ingesting again {ranges_text(batch)}, under run key {key}: the cursor was moved back over ranges "
                    f"planned before, by run {', '.join(f'{run.run_id} ({run.status.value})' for run in earlier)}")
            yield dg.RunRequest(run_key=key, run_config=run_config(batch, heal_gaps=heal),
                                tags={HEALS_TAG: "true"} if heal else {})
            heal = False
        context.update_cursor(cursor_text(new_cursor, kept_ids, checked_at))

    return kafka_microbatch_sensor

