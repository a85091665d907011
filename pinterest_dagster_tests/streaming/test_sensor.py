"""kafka_microbatch_sensor against the real broker, evaluated tick by tick."""

from __future__ import annotations

import json
import threading
import time

import dagster as dg
import pytest

from dagster._core.test_utils import create_run_for_test

from pinterest_dagster.defs.streaming.jobs import STREAMING_TAGS
from pinterest_dagster.defs.streaming.sensors import build_kafka_microbatch_sensor
from pinterest_dagster.lib.kafka import ensure_topics, make_producer
from pinterest_dagster.lib.microbatch import parse_cursor, parse_topic_ids
from pinterest_dagster.lib.resources import KafkaResource
from pinterest_dagster_tests.services import definitions_repository_origin, isolated_settings, require_kafka


@pytest.fixture
def settings():
    settings = isolated_settings()
    require_kafka(settings)
    ensure_topics(settings)
    return settings


def produce(settings, kind: str, count: int) -> None:
    producer = make_producer(settings)
    for i in range(count):
        producer.send(settings.topic(kind), key=str(i).encode(), value=json.dumps({"ind": i}).encode())
    producer.flush()
    producer.close()


def tick(settings, cursor: str | None, max_records: int = 1_000, runs_in_flight: int = 0):
    sensor = build_kafka_microbatch_sensor(max_records_per_run=max_records, max_in_flight=3, wait_seconds=0)
    kafka = KafkaResource.from_settings(settings)
    with dg.instance_for_test() as instance:
        for _ in range(runs_in_flight):
            create_run_for_test(instance, job_name="streaming_job", tags=STREAMING_TAGS, status=dg.DagsterRunStatus.STARTED)
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"kafka": kafka})
        result = sensor.evaluate_tick(context)
    return result


def ranges_of(result) -> list[dict]:
    return [r for request in result.run_requests for r in request.run_config["ops"]["ingest_kafka_events"]["config"]["ranges"]]


def test_no_run_without_new_data(settings):
    result = tick(settings, None)
    assert result.run_requests == []
    assert result.skip_message == "no new events"


def test_new_events_give_runs_with_exact_ranges_and_the_cursor_moves_past_them(settings):
    produce(settings, "geo", 40)
    result = tick(settings, None)
    ranges = ranges_of(result)
    assert {r["topic"] for r in ranges} == {settings.topic("geo")}
    assert sum(r["end"] - r["start"] for r in ranges) == 40
    cursor = parse_cursor(result.cursor)
    assert sum(cursor.values()) == 40
    assert set(parse_topic_ids(result.cursor)) == set(settings.topics.values())

    again = tick(settings, result.cursor)
    assert again.run_requests == [] and parse_cursor(again.cursor or result.cursor) == cursor


def test_batch_bound_is_respected(settings):
    produce(settings, "pin", 90)
    result = tick(settings, None, max_records=30)
    assert len(result.run_requests) == 3
    for request in result.run_requests:
        ranges = request.run_config["ops"]["ingest_kafka_events"]["config"]["ranges"]
        assert sum(r["end"] - r["start"] for r in ranges) <= 30


def test_run_key_is_stable_for_the_same_ranges(settings):
    produce(settings, "user", 12)
    first, second = tick(settings, None), tick(settings, None)
    assert [r.run_key for r in first.run_requests] == [r.run_key for r in second.run_requests]
    assert all(r.run_key.startswith("microbatch-") for r in first.run_requests)


def test_no_new_run_while_the_in_flight_bound_is_reached_and_the_cursor_waits(settings):
    produce(settings, "pin", 30)
    blocked = tick(settings, None, runs_in_flight=3)
    assert blocked.run_requests == [] and "already queued or running" in blocked.skip_message
    assert blocked.cursor is None
    one_slot = tick(settings, None, max_records=10, runs_in_flight=2)
    assert len(one_slot.run_requests) == 1


def test_a_tick_waits_for_the_in_flight_run_to_finish_then_requests_the_next_batch(settings):
    produce(settings, "pin", 5)
    sensor = build_kafka_microbatch_sensor(max_records_per_run=100, max_in_flight=1, wait_seconds=30)
    kafka = KafkaResource.from_settings(settings)
    with dg.instance_for_test() as instance:
        running = create_run_for_test(instance, job_name="streaming_job", tags=STREAMING_TAGS,
                                      status=dg.DagsterRunStatus.STARTED)
        finisher = threading.Timer(1.0, lambda: instance.delete_run(running.run_id))
        started = time.monotonic()
        finisher.start()
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources={"kafka": kafka}))
        waited = time.monotonic() - started
        finisher.join()
    assert len(result.run_requests) == 1 and sum(r["end"] - r["start"] for r in ranges_of(result)) == 5
    assert 1.0 <= waited < 30


def test_a_tick_waits_for_new_events_until_its_deadline(settings):
    sensor = build_kafka_microbatch_sensor(max_records_per_run=100, wait_seconds=30)
    kafka = KafkaResource.from_settings(settings)
    # One event: events sent to several partitions become visible one partition at a time, and a tick
    # rightly takes the first it sees.
    producer = threading.Timer(1.0, produce, args=(settings, "user", 1))
    started = time.monotonic()
    producer.start()
    with dg.instance_for_test() as instance:
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources={"kafka": kafka}))
        waited = time.monotonic() - started
    producer.join()
    assert sum(r["end"] - r["start"] for r in ranges_of(result)) == 1
    assert 1.0 <= waited < 30

    quiet = build_kafka_microbatch_sensor(max_records_per_run=100, wait_seconds=0.5)
    with dg.instance_for_test() as instance:
        started = time.monotonic()
        skipped = quiet.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=result.cursor, resources={"kafka": kafka})
        )
    assert skipped.run_requests == [] and skipped.skip_message == "no new events"
    assert time.monotonic() - started >= 0.5


def test_a_recreated_topic_is_named_in_the_tick_with_the_command_that_resets_its_cursor(settings):
    pin = settings.topic("pin")
    result = tick(settings, json.dumps({f"{pin}:0": 500}))
    assert result.run_requests == []
    assert f"{pin}[0] (end 0, cursor 500)" in result.skip_message and "deleted and recreated" in result.skip_message
    assert "dagster sensor cursor kafka_microbatch_sensor -w workspace.yaml --set '" in result.skip_message
    assert parse_cursor(reset_cursor(result.skip_message)) == {f"{pin}:0": 0}


def failed_run(instance, ranges, tags=None):
    from pinterest_dagster.lib.microbatch import run_config

    return create_run_for_test(instance, job_name="streaming_job", status=dg.DagsterRunStatus.FAILURE,
                               tags={**STREAMING_TAGS, **(tags or {})}, run_config=run_config(ranges))


def test_a_micro_batch_that_failed_past_its_retries_is_planned_again_once(settings):
    from pinterest_dagster.lib.offsets import OffsetRange
    from pinterest_dagster.lib.streaming_runs import REPLANS_TAG

    sensor = build_kafka_microbatch_sensor(max_records_per_run=100, wait_seconds=0, retry_grace_seconds=0)
    kafka = KafkaResource.from_settings(settings)
    pin = settings.topic("pin")
    with dg.instance_for_test() as instance:
        gone = failed_run(instance, [OffsetRange(pin, 0, 10, 20)])
        retried = failed_run(instance, [OffsetRange(pin, 1, 0, 5)])
        # Its retry succeeded: nothing to plan again.
        create_run_for_test(instance, job_name="streaming_job", status=dg.DagsterRunStatus.SUCCESS,
                            tags={**STREAMING_TAGS, "dagster/root_run_id": retried.run_id})
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources={"kafka": kafka}))
        [request] = result.run_requests
        assert request.run_key == f"replan-{gone.run_id}" and request.tags[REPLANS_TAG] == gone.run_id
        config = request.run_config["ops"]["ingest_kafka_events"]["config"]
        assert config == {"ranges": [{"topic": pin, "partition": 0, "start": 10, "end": 20}], "heal_gaps": True}
        # Once a run re-plans it, the failed one is not planned a second time.
        failed_run(instance, [OffsetRange(pin, 0, 10, 20)], tags={REPLANS_TAG: gone.run_id})
        again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources={"kafka": kafka}))
        assert not [r for r in again.run_requests if r.run_key == f"replan-{gone.run_id}"]


def test_a_failure_just_before_the_daemon_stopped_is_planned_again_when_it_starts_hours_later(settings, monkeypatch):
    """The sensor looks for failures from the last tick that looked (its cursor's `failures_checked_at`), not from now."""
    from pinterest_dagster.lib import streaming_runs
    from pinterest_dagster.lib.microbatch import parse_failures_checked_at
    from pinterest_dagster.lib.offsets import OffsetRange

    sensor = build_kafka_microbatch_sensor(max_records_per_run=100, wait_seconds=0, retry_grace_seconds=0)
    kafka = KafkaResource.from_settings(settings)
    monkeypatch.setattr(streaming_runs, "FAILURES_LOOKED_AT_SECONDS", 1)  # the look-back, 6 hours, scaled to 1 s
    with dg.instance_for_test() as instance:
        def evaluate(cursor):
            return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"kafka": kafka}))

        def replanned(result) -> list[str]:
            return [r.run_key for r in result.run_requests if r.run_key.startswith("replan-")]

        looked = evaluate(None)  # the last tick before the daemon stopped: nothing new, nothing failed
        assert looked.run_requests == [] and parse_failures_checked_at(looked.cursor) <= time.time()
        gone = failed_run(instance, [OffsetRange(settings.topic("pin"), 0, 10, 20)])
        time.sleep(1.5)  # the daemon was down for longer than the look-back
        assert replanned(evaluate(None)) == []  # counted from now, the failure is past the look-back
        # The first ticks after the restart find a run in flight (launched before the outage): they do not look.
        queued = create_run_for_test(instance, job_name="streaming_job", tags=STREAMING_TAGS, status=dg.DagsterRunStatus.STARTED)
        blocked = evaluate(looked.cursor)
        assert blocked.run_requests == [] and blocked.cursor == looked.cursor
        instance.delete_run(queued.run_id)
        assert replanned(evaluate(looked.cursor)) == [f"replan-{gone.run_id}"]


def test_ranges_planned_before_are_ingested_again_once_the_cursor_is_moved_back_over_them(settings):
    """Dagster skips in silence a request whose run key it has seen: a cursor moved back by hand over ranges planned
    before gets them under a new key. A request whose run is in flight keeps its key (the tick after a daemon crash)."""
    from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

    from pinterest_dagster.lib.streaming_runs import SENSOR_NAME

    produce(settings, "geo", 20)
    sensor = build_kafka_microbatch_sensor(max_records_per_run=1_000, max_in_flight=3, wait_seconds=0)
    kafka = KafkaResource.from_settings(settings)
    with dg.instance_for_test() as instance:
        def evaluate():  # from the cursor's start, as after `dagster sensor cursor ... --delete`
            return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources={"kafka": kafka}))

        def launched(key, status):
            return create_run_for_test(instance, job_name="streaming_job", status=status,
                                       tags={**STREAMING_TAGS, RUN_KEY_TAG: key, SENSOR_NAME_TAG: SENSOR_NAME})

        [first] = evaluate().run_requests
        in_flight = launched(first.run_key, dg.DagsterRunStatus.STARTED)
        [again] = evaluate().run_requests
        assert again.run_key == first.run_key
        instance.delete_run(in_flight.run_id)
        done = launched(first.run_key, dg.DagsterRunStatus.SUCCESS)
        [moved_back] = evaluate().run_requests
        assert moved_back.run_key == f"{first.run_key}-again-{done.run_id}" and moved_back.run_config == first.run_config
        assert [r.run_key for r in evaluate().run_requests] == [moved_back.run_key]  # the same tick again: the same key
        done_again = launched(moved_back.run_key, dg.DagsterRunStatus.FAILURE)
        [twice] = evaluate().run_requests
        assert twice.run_key == f"{moved_back.run_key}-again-{done_again.run_id}"
        # A retry in flight carries its first run's key, tags and ranges: it ingests them, and the key is kept.
        failed = launched(twice.run_key, dg.DagsterRunStatus.FAILURE)
        create_run_for_test(instance, job_name="streaming_job", status=dg.DagsterRunStatus.STARTED,
                            parent_run_id=failed.run_id, root_run_id=failed.run_id,
                            tags={**STREAMING_TAGS, RUN_KEY_TAG: twice.run_key, SENSOR_NAME_TAG: SENSOR_NAME})
        assert [r.run_key for r in evaluate().run_requests] == [twice.run_key]


def reset_cursor(message: str) -> str:
    """The cursor that the reset command in a sensor's message sets."""
    return message.split("--set '")[1].split("'")[0]


def test_a_topic_really_deleted_and_recreated_is_reported_by_the_next_tick(settings):
    from kafka import KafkaAdminClient

    from pinterest_dagster.lib.kafka import client_config, end_offsets
    from pinterest_dagster.lib.microbatch import cursor_key

    produce(settings, "user", 30)
    first = tick(settings, None, max_records=10_000)
    assert first.run_requests
    user, geo = settings.topic("user"), settings.topic("geo")
    admin = KafkaAdminClient(**client_config(settings))
    admin.delete_topics([user], timeout_ms=30_000)
    deadline = time.monotonic() + 60
    while user in admin.list_topics():  # the broker forgets a deleted topic asynchronously
        assert time.monotonic() < deadline, f"{user} still listed 60 s after its deletion"
        time.sleep(0.5)
    admin.close()
    assert ensure_topics(settings) == [user]
    result = tick(settings, first.cursor)
    assert result.run_requests == [] and "deleted and recreated" in result.skip_message
    assert f"{user}[" in result.skip_message and "dagster sensor cursor kafka_microbatch_sensor" in result.skip_message

    # The new topic gets the same 30 events: each partition's end is back at the cursor, not behind it, and only
    # the topic's id tells. Another topic's events are planned meanwhile; the cursor keeps the user topic's old id.
    produce(settings, "user", 30)
    produce(settings, "geo", 10)
    ends = {cursor_key(tp.topic, tp.partition): end for tp, end in end_offsets(settings, [user]).items()}
    assert ends == {key: offset for key, offset in parse_cursor(first.cursor).items() if key in ends}
    beside = tick(settings, first.cursor)
    assert {r["topic"] for r in ranges_of(beside)} == {geo}
    assert parse_topic_ids(beside.cursor)[user] == parse_topic_ids(first.cursor)[user]
    passed = tick(settings, beside.cursor)
    assert passed.run_requests == [] and f"the topic's id changed ({user})" in passed.skip_message
    # Its command resets the cursor, keeping the other topics' ids; the next tick plans the new topic from its
    # first offset: the same ranges as the old topic's first tick, under other run keys (Dagster skips a key it
    # has seen, in silence).
    reset = reset_cursor(passed.skip_message)
    assert user not in parse_topic_ids(reset) and geo in parse_topic_ids(reset)
    after = tick(settings, reset, max_records=10_000)
    assert ranges_of(after) == ranges_of(first)
    assert not {r.run_key for r in after.run_requests} & {r.run_key for r in first.run_requests}
    assert parse_topic_ids(after.cursor)[user] != parse_topic_ids(first.cursor)[user]


def test_healing_and_the_catch_up_leave_alone_a_topic_recreated_since_the_sensor_last_planned(settings):
    """They read the sensor's stored cursor, running or not, and Kafka's ids (`not_recreated`, defs/ingest/assets.py)."""
    from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, InstigatorType, SensorInstigatorData

    from pinterest_dagster.defs.ingest.assets import not_recreated
    from pinterest_dagster.lib.kafka import topic_ids
    from pinterest_dagster.lib.microbatch import cursor_text
    from pinterest_dagster.lib.offsets import PartitionCoverage
    from pinterest_dagster.lib.streaming_runs import SENSOR_NAME, stored_sensor_cursor

    pin, user = settings.topic("pin"), settings.topic("user")
    coverage = [PartitionCoverage(pin, 0, 0, 10, ((0, 10),)), PartitionCoverage(user, 0, 0, 10, ((0, 5),))]
    kafka = KafkaResource.from_settings(settings)
    ids = topic_ids(settings, [pin, user])
    with dg.instance_for_test() as instance:
        context = dg.build_asset_context(instance=instance)
        assert stored_sensor_cursor(instance) is None and not_recreated(context, kafka, coverage) == coverage
        stored = {pin: ids[pin], user: "the-id-of-the-topic-before"}
        instance.add_instigator_state(InstigatorState(
            definitions_repository_origin().get_instigator_origin(SENSOR_NAME), InstigatorType.SENSOR, InstigatorStatus.STOPPED,
            SensorInstigatorData(cursor=cursor_text({f"{pin}:0": 10}, stored), last_tick_start_timestamp=time.time())))
        assert parse_topic_ids(stored_sensor_cursor(instance)) == stored
        assert not_recreated(context, kafka, coverage) == coverage[:1]


def test_a_topic_whose_id_changed_is_neither_planned_nor_re_planned_and_a_topic_behind_keeps_no_new_id(settings):
    from pinterest_dagster.lib.microbatch import cursor_text
    from pinterest_dagster.lib.offsets import OffsetRange

    geo, pin, user = settings.topic("geo"), settings.topic("pin"), settings.topic("user")
    produce(settings, "geo", 10)
    # New events on a topic whose id is not the cursor's: nothing of it is planned, and the tick says why.
    changed = tick(settings, cursor_text({}, {geo: "the-id-of-the-topic-before"}))
    assert changed.run_requests == [] and f"the topic's id changed ({geo})" in changed.skip_message
    # Nor is a failed micro-batch of the old topic planned again.
    sensor = build_kafka_microbatch_sensor(max_records_per_run=100, wait_seconds=0, retry_grace_seconds=0)
    with dg.instance_for_test() as instance:
        failed_run(instance, [OffsetRange(geo, 0, 0, 3)])
        result = sensor.evaluate_tick(dg.build_sensor_context(
            instance=instance, cursor=cursor_text({}, {geo: "the-id-of-the-topic-before"}),
            resources={"kafka": KafkaResource.from_settings(settings)}))
    assert result.run_requests == []
    # A cursor from before topic ids, whose user topic went behind it: pin is planned, and the cursor does not take
    # the recreated user topic's id for the one it was planned against.
    produce(settings, "pin", 5)
    behind = tick(settings, json.dumps({f"{user}:0": 500, **{f"{geo}:{p}": 10 for p in range(3)}}))
    assert {r["topic"] for r in ranges_of(behind)} == {pin}
    assert user not in parse_topic_ids(behind.cursor) and pin in parse_topic_ids(behind.cursor)
