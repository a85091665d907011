"""Coverage of Kafka partitions by the ingestion log: gaps, retention losses, the tail, recreated topics."""

from __future__ import annotations

from pinterest_dagster.defs.ingest.checks import regions_to_check, verified_up_to
from pinterest_dagster.lib.check_state import CheckedSince
from pinterest_dagster.lib.offsets import (
    OffsetRange, PartitionCoverage, coverage_of, intersection, lag_per_topic, missing, ranges_to_ingest, retained_parts,
    since_last_check, union,
)


def test_union_joins_overlapping_and_touching_intervals():
    assert union([(100, 300), (100, 250), (250, 500), (600, 610), (5, 5)]) == [(100, 500), (600, 610)]
    assert union([]) == []


def test_missing_lists_the_holes_of_a_window():
    assert missing([(10, 20), (30, 40)], 0, 50) == [(0, 10), (20, 30), (40, 50)]
    assert missing([(0, 50)], 10, 20) == []
    assert missing([], 3, 7) == [(3, 7)]
    assert missing([(10, 20)], 15, 15) == []


def test_a_gap_below_the_highest_ingested_offset_is_a_gap_and_counts_as_lag():
    c = PartitionCoverage("t", 0, first=0, end=100, ingested=((0, 40), (60, 80)))
    assert (c.until, c.gaps, c.lost, c.tail, c.lag) == (80, [(40, 60)], [], (80, 100), 40)


def test_offsets_deleted_by_retention_before_ingestion_are_lost_not_gaps():
    c = PartitionCoverage("t", 0, first=50, end=100, ingested=((0, 20), (30, 60)))
    assert c.lost == [(20, 30)] and c.gaps == [] and c.tail == (60, 100)
    nothing_ingested = PartitionCoverage("t", 0, first=50, end=70)
    assert (nothing_ingested.lost, nothing_ingested.tail, nothing_ingested.lag) == ([(0, 50)], (50, 70), 20)
    ingested_then_overtaken = PartitionCoverage("t", 0, first=90, end=100, ingested=((0, 60),))
    assert (ingested_then_overtaken.lost, ingested_then_overtaken.tail) == ([(60, 90)], (90, 100))


def test_an_end_behind_what_was_ingested_means_a_recreated_topic_and_plans_nothing():
    c = PartitionCoverage("t", 0, first=0, end=10, ingested=((0, 500),))
    assert c.moved_back and (c.gaps, c.lost, c.tail, c.lag) == ([], [], None, 0)
    assert ranges_to_ingest([c], up_to={("t", 0): 10}) == []


def test_gaps_leave_out_ranges_that_runs_in_flight_own():
    [c] = coverage_of({("t", 0): [(0, 10), (30, 40), (70, 80)]}, {("t", 0): (0, 100)})
    owned = [OffsetRange("t", 0, 40, 50), OffsetRange("u", 0, 0, 99)]
    assert ranges_to_ingest([c], owned) == [OffsetRange("t", 0, 10, 30), OffsetRange("t", 0, 50, 70)]


def test_a_catch_up_takes_gaps_and_tail_up_to_its_limit_and_budget():
    coverage = coverage_of({("t", 0): [(0, 10), (20, 30)]}, {("t", 0): (0, 100), ("t", 1): (5, 50)})
    assert ranges_to_ingest(coverage, up_to={("t", 0): 100, ("t", 1): 50}) == [
        OffsetRange("t", 0, 10, 20), OffsetRange("t", 0, 30, 100), OffsetRange("t", 1, 5, 50)]
    # Streaming's cursor as the limit: what lies beyond it is streaming's.
    assert ranges_to_ingest(coverage, up_to={("t", 0): 60, ("t", 1): 5}) == [
        OffsetRange("t", 0, 10, 20), OffsetRange("t", 0, 30, 60)]
    assert ranges_to_ingest(coverage, up_to={("t", 0): 100, ("t", 1): 50}, max_records_per_partition=15) == [
        OffsetRange("t", 0, 10, 20), OffsetRange("t", 0, 30, 35), OffsetRange("t", 1, 5, 20)]


def test_the_window_that_must_be_in_the_lake_leaves_out_ranges_of_runs_in_flight():
    c = PartitionCoverage("t", 0, first=10, end=100, ingested=((0, 40), (60, 80)))
    assert c.window() == [(10, 80)]
    # A retry queued behind the run checking will write 40-60: not a gap yet.
    assert c.window([OffsetRange("t", 0, 40, 60), OffsetRange("t", 1, 0, 99)]) == [(10, 40), (60, 80)]


def test_lag_per_topic_counts_from_the_cursor_or_what_was_ingested_plus_what_runs_in_flight_will_write():
    ends = {("t.pin", 0): 100, ("t.pin", 1): 50, ("t.geo", 0): 30}
    # The cursor: pin[0] planned up to 80, pin[1] to 50; nothing of geo. A run in flight will write pin[0] 60-80.
    assert lag_per_topic(ends, {("t.pin", 0): 80, ("t.pin", 1): 50}, owned=[OffsetRange("t.pin", 0, 60, 80)]) == {
        "t.pin": 20 + 20, "t.geo": 30}
    # Without a cursor: what the log holds, moved on by this run's own ranges; never below zero.
    assert lag_per_topic(ends, {("t.pin", 0): 70}, ingested=[OffsetRange("t.pin", 0, 70, 90), OffsetRange("t.geo", 0, 0, 35)]) == {
        "t.pin": 10 + 50, "t.geo": 0}


def test_intersection_keeps_what_both_unions_hold():
    assert intersection([(0, 10), (20, 30)], [(5, 25), (28, 40)]) == [(5, 10), (20, 25), (28, 30)]
    assert intersection([(0, 10)], []) == [] and intersection([(0, 10)], [(10, 20)]) == []


def test_a_check_reads_what_arrived_since_it_last_passed_and_what_was_ingested_again():
    window = [(50, 80), (90, 200)]  # retained from 50, a gap 80-90, ingested up to 200
    assert since_last_check(window, None, []) == [(50, 80), (90, 200)]  # never passed: all of it
    assert since_last_check(window, 150, []) == [(150, 200)]
    # A range ingested again below (a heal, a retried run) is read again; one outside the window is not.
    assert since_last_check(window, 150, [(60, 70), (0, 10)]) == [(60, 70), (150, 200)]
    assert since_last_check(window, 200, []) == []  # nothing new
    assert since_last_check([], 40, [(0, 10)]) == []


def test_the_regions_a_completeness_check_reads_and_where_it_may_resume():
    c = PartitionCoverage("t", 0, first=0, end=300, ingested=((0, 200),))
    recreated = PartitionCoverage("t", 1, first=0, end=20, ingested=((0, 20),))
    since = CheckedSince(up_to={("t", 0): 120, ("t", 1): 500}, rewritten={("t", 0): [(10, 20)]})
    owned = [OffsetRange("t", 0, 150, 160)]
    assert regions_to_check([c, recreated], since, owned) == {0: [(10, 20), (120, 150), (160, 200)], 1: [(0, 20)]}
    # Passing, it has seen partition 0 up to the range a run in flight will write, partition 1 all of it.
    assert verified_up_to([c, recreated], owned) == {("t", 0): 150, ("t", 1): 20}


def test_ranges_split_at_kafkas_first_retained_offset():
    ranges = [OffsetRange("t", 0, 0, 10), OffsetRange("t", 1, 5, 8), OffsetRange("t", 2, 3, 6), OffsetRange("u", 0, 2, 4)]
    kept, deleted = retained_parts(ranges, {("t", 0): 4, ("t", 1): 9, ("t", 2): 0})
    assert kept == [OffsetRange("t", 0, 4, 10), OffsetRange("t", 2, 3, 6), OffsetRange("u", 0, 2, 4)]
    assert deleted == [OffsetRange("t", 0, 0, 4), OffsetRange("t", 1, 5, 8)]
