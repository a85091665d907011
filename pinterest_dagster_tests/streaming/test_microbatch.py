"""Micro-batch planning: bounded batches of exact offset ranges from a forward-only cursor."""

from __future__ import annotations

import pytest

from pinterest_dagster.lib.ingestion import OffsetRange
from pinterest_dagster.lib.microbatch import (
    cursor_reset_command, cursor_text, deleted_before_ingestion, moved_back, parse_cursor, parse_failures_checked_at,
    parse_topic_ids, plan_microbatches,
    recreated_topics, run_config, run_key,
)

BOUNDS = {("t.pin", 0): (0, 10), ("t.pin", 1): (0, 4), ("t.geo", 0): (0, 0)}


def test_nothing_new_plans_nothing_and_keeps_the_cursor():
    cursor = {"t.pin:0": 10, "t.pin:1": 4, "t.geo:0": 0}
    batches, new_cursor = plan_microbatches(cursor, BOUNDS, max_records_per_run=100, max_runs=3)
    assert batches == [] and new_cursor == cursor


def test_first_tick_starts_at_the_first_offset_still_in_the_log():
    batches, cursor = plan_microbatches({}, {("t.pin", 0): (5, 8)}, max_records_per_run=100, max_runs=1)
    assert batches == [[OffsetRange("t.pin", 0, 5, 8)]]
    assert cursor == {"t.pin:0": 8}


def test_every_batch_respects_the_record_bound_and_a_backlog_drains_over_several_batches():
    batches, cursor = plan_microbatches({}, BOUNDS, max_records_per_run=6, max_runs=10)
    assert all(sum(r.size for r in batch) <= 6 for batch in batches)
    covered = sorted((r.topic, r.partition, o) for batch in batches for r in batch for o in range(r.start, r.end))
    assert covered == sorted([("t.pin", 0, o) for o in range(10)] + [("t.pin", 1, o) for o in range(4)])
    assert cursor == {"t.pin:0": 10, "t.pin:1": 4, "t.geo:0": 0}


def test_the_bound_holds_with_more_partitions_than_records():
    bounds = {("t.pin", p): (0, 5) for p in range(9)}
    batches, _ = plan_microbatches({}, bounds, max_records_per_run=4, max_runs=20)
    assert all(sum(r.size for r in batch) <= 4 for batch in batches)
    assert sum(r.size for batch in batches for r in batch) == 45


def test_max_runs_leaves_the_rest_for_the_next_tick():
    batches, cursor = plan_microbatches({}, BOUNDS, max_records_per_run=3, max_runs=1)
    assert len(batches) == 1 and cursor["t.pin:0"] < 10
    more, _ = plan_microbatches(cursor, BOUNDS, max_records_per_run=3, max_runs=1)
    assert more[0][0].start == batches[0][0].end


def test_cursor_never_moves_backwards():
    batches, cursor = plan_microbatches({"t.pin:0": 50}, {("t.pin", 0): (0, 10)}, 100, 1)
    assert batches == [] and cursor == {"t.pin:0": 50}


def test_run_key_is_stable_for_the_same_ranges_and_differs_otherwise():
    batch = [OffsetRange("t.pin", 1, 0, 4), OffsetRange("t.pin", 0, 0, 10)]
    assert run_key(batch) == run_key(list(reversed(batch)))
    assert run_key(batch) != run_key([OffsetRange("t.pin", 1, 0, 5), OffsetRange("t.pin", 0, 0, 10)])


def test_run_config_names_only_offset_ranges():
    config = run_config([OffsetRange("t.pin", 0, 3, 7)])
    assert config == {"ops": {"ingest_kafka_events": {"config": {"ranges": [
        {"topic": "t.pin", "partition": 0, "start": 3, "end": 7}]}}}}


def test_invalid_bounds_are_refused():
    with pytest.raises(ValueError):
        plan_microbatches({}, BOUNDS, max_records_per_run=0, max_runs=1)


def test_a_partition_whose_end_went_behind_the_cursor_is_named_with_the_command_that_resets_it():
    cursor = {"t.pin:0": 500, "t.pin:1": 7, "t.geo:0": 3}
    bounds = {("t.pin", 0): (0, 20), ("t.pin", 1): (0, 9), ("t.geo", 0): (0, 3)}
    assert moved_back(cursor, bounds) == {("t.pin", 0): (500, 20)}
    batches, new_cursor = plan_microbatches(cursor, bounds, 100, 1)
    assert batches == [[OffsetRange("t.pin", 1, 7, 9)]] and new_cursor["t.pin:0"] == 500
    command = cursor_reset_command(cursor, bounds, "kafka_microbatch_sensor")
    assert command.startswith("dagster sensor cursor kafka_microbatch_sensor -w workspace.yaml --set ")
    assert '"t.pin:0": 0' in command and '"t.pin:1": 7' in command


def test_a_topic_whose_id_changed_is_recreated_even_when_its_end_passed_the_cursor():
    known = {"t.pin": "id-1", "t.geo": "id-2"}
    assert recreated_topics(known, {"t.pin": "id-1", "t.geo": "id-2"}) == set()
    assert recreated_topics({}, {"t.pin": "id-1"}) == set()  # first tick, or a reset cursor: the ids are taken
    assert recreated_topics(known, {"t.pin": "id-9", "t.geo": "id-2", "t.user": "id-3"}) == {"t.pin"}
    cursor = {"t.pin:0": 5, "t.pin:1": 4, "t.pin:2": 8, "t.geo:0": 3}  # the new t.pin has no partition 2
    bounds = {("t.pin", 0): (0, 20), ("t.pin", 1): (0, 9), ("t.geo", 0): (0, 3)}
    assert moved_back(cursor, bounds) == {}
    assert moved_back(cursor, bounds, {"t.pin"}) == {("t.pin", 0): (5, 20), ("t.pin", 1): (4, 9)}
    command = cursor_reset_command(cursor, bounds, "kafka_microbatch_sensor", {"t.pin"}, {"t.pin": "id-1", "t.geo": "id-2"},
                                   failures_checked_at=1_796_000_000.5)
    # The other topics keep their ids; the reset one takes Kafka's at the next tick. When the sensor last looked for
    # failed micro-batches is kept: those before a long stop are still looked for.
    reset = command.split("--set '")[1].rstrip("'")
    assert parse_cursor(reset) == {"t.geo:0": 3, "t.pin:0": 0, "t.pin:1": 0} and parse_topic_ids(reset) == {"t.geo": "id-2"}
    assert parse_failures_checked_at(reset) == 1_796_000_000.5
    # The same offsets of the topic created again get another run key: Dagster skips a key it has seen.
    batch = [OffsetRange("t.pin", 0, 0, 5)]
    assert run_key(batch, {"t.pin": "id-1"}) != run_key(batch, {"t.pin": "id-9"})
    assert run_key(batch, {"t.pin": "id-1"}) == run_key(batch, {"t.pin": "id-1", "t.geo": "id-2"})


def test_the_cursor_keeps_offsets_and_topic_ids_and_reads_the_offsets_alone_as_a_reset_sets_them():
    text = cursor_text({"t.pin:0": 5}, {"t.pin": "id-1"})
    assert (parse_cursor(text), parse_topic_ids(text)) == ({"t.pin:0": 5}, {"t.pin": "id-1"})
    assert (parse_cursor('{"t.pin:0": 0}'), parse_topic_ids('{"t.pin:0": 0}')) == ({"t.pin:0": 0}, {})
    assert (parse_cursor(None), parse_topic_ids(None)) == ({}, {})
    looked = cursor_text({"t.pin:0": 5}, {"t.pin": "id-1"}, failures_checked_at=1_796_000_000.25)
    assert (parse_cursor(looked), parse_topic_ids(looked), parse_failures_checked_at(looked)) == (
        {"t.pin:0": 5}, {"t.pin": "id-1"}, 1_796_000_000.25)
    assert parse_failures_checked_at(text) is None and parse_failures_checked_at('{"t.pin:0": 0}') is None


def test_offsets_retention_deleted_between_the_cursor_and_kafkas_first_offset_are_named():
    cursor = {"t.pin:0": 5, "t.pin:1": 7, "t.geo:0": 3}
    # t.pin[0]: 5-12 deleted, nothing left to read; t.pin[1]: cursor within the log; t.user: no cursor yet.
    bounds = {("t.pin", 0): (12, 12), ("t.pin", 1): (2, 9), ("t.geo", 0): (4, 6), ("t.user", 0): (8, 9)}
    assert deleted_before_ingestion(cursor, bounds) == [OffsetRange("t.geo", 0, 3, 4), OffsetRange("t.pin", 0, 5, 12)]
    batches, new_cursor = plan_microbatches(cursor, bounds, 100, 1)
    assert sorted(batches[0]) == [OffsetRange("t.geo", 0, 4, 6), OffsetRange("t.pin", 1, 7, 9), OffsetRange("t.user", 0, 8, 9)]
    assert new_cursor["t.pin:0"] == 12


def test_a_healing_run_config_says_so():
    config = run_config([OffsetRange("t.pin", 0, 3, 7)], heal_gaps=True)["ops"]["ingest_kafka_events"]["config"]
    assert config["heal_gaps"] is True
