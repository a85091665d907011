"""Planning streaming micro-batches: from a cursor of next offsets to bounded, exact offset ranges."""

from __future__ import annotations

import hashlib
import json
import math

from pinterest_dagster.lib.offsets import OffsetRange

# The step that ingests a run's ranges (defs/ingest/assets.py): the run config names it, the merge step looks for it.
INGEST_STEP = "ingest_kafka_events"

Cursor = dict[str, int]  # "topic:partition" -> next offset to ingest
TopicIds = dict[str, str]  # topic -> Kafka's id of the topic (a UUID, new each time a topic is created)


def cursor_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def partition_of(key: str) -> tuple[str, int]:
    """(topic, partition) of a cursor key, `cursor_key`'s inverse."""
    topic, partition = key.rsplit(":", 1)
    return topic, int(partition)


def plan_microbatches(
    cursor: Cursor,
    bounds: dict[tuple[str, int], tuple[int, int]],
    max_records_per_run: int,
    max_runs: int,
) -> tuple[list[list[OffsetRange]], Cursor]:
    """Split what lies between the cursor and the end of each partition into at most `max_runs` batches.

    `bounds` maps (topic, partition) to (first offset still in the log, next offset to be written).
    Each batch holds at most `max_records_per_run` offsets, shared evenly by the partitions, so a
    backlog drains over several runs. The returned cursor never moves backwards.
    """
    if max_records_per_run < 1 or max_runs < 1:
        raise ValueError("max_records_per_run and max_runs must be positive")
    next_offset = {}
    for (topic, partition), (first, end) in sorted(bounds.items()):
        # A cursor below the first offset still in the log means retention removed events: go on from there.
        next_offset[(topic, partition)] = (max(cursor.get(cursor_key(topic, partition), first), first), end)
    batches = []
    for _ in range(max_runs):
        pending = {tp: (start, end) for tp, (start, end) in next_offset.items() if end > start}
        if not pending:
            break
        per_partition = max(1, math.floor(max_records_per_run / len(pending)))
        batch, budget = [], max_records_per_run
        for (topic, partition), (start, end) in pending.items():
            stop = min(end, start + per_partition, start + budget)
            if stop == start:
                break
            batch.append(OffsetRange(topic, partition, start, stop))
            next_offset[(topic, partition)] = (stop, end)
            budget -= stop - start
        batches.append(batch)

    new_cursor = dict(cursor)
    for (topic, partition), (start, _) in next_offset.items():
        key = cursor_key(topic, partition)
        new_cursor[key] = max(new_cursor.get(key, 0), start)
    return batches, new_cursor


def recreated_topics(known: TopicIds, current: TopicIds) -> set[str]:
    """Topics whose Kafka id is not the one the cursor was planned against: deleted and recreated since,
    even when the new topic already holds more offsets than the cursor (its end did not go backwards)."""
    return {topic for topic, topic_id in current.items() if known.get(topic, topic_id) != topic_id}


def moved_back(cursor: Cursor, bounds: dict[tuple[str, int], tuple[int, int]],
               recreated: set[str] = frozenset()) -> dict[tuple[str, int], tuple[int, int]]:
    """Partitions whose end offset lies behind the cursor, or of a `recreated` topic, (cursor, end) each:
    the topic was deleted and recreated, and planning from the cursor would wait for ever for offsets
    already used once, or take the new topic's offsets for ones already ingested."""
    return {
        (topic, partition): (cursor.get(cursor_key(topic, partition), 0), end)
        for (topic, partition), (_, end) in sorted(bounds.items())
        if cursor.get(cursor_key(topic, partition), 0) > end
        or topic in recreated
    }


def without_topics(bounds: dict[tuple[str, int], tuple[int, int]], topics: set[str]) -> dict[tuple[str, int], tuple[int, int]]:
    return {tp: b for tp, b in bounds.items() if tp[0] not in topics}


def deleted_before_ingestion(cursor: Cursor, bounds: dict[tuple[str, int], tuple[int, int]]) -> list[OffsetRange]:
    """Offsets between the cursor and the first one Kafka still retains: retention deleted them before any
    micro-batch read them (the run that ingests the partition next reports them as lost)."""
    return [
        OffsetRange(topic, partition, cursor[cursor_key(topic, partition)], first)
        for (topic, partition), (first, end) in sorted(bounds.items())
        if cursor.get(cursor_key(topic, partition), first) < first <= end
    ]


def cursor_reset_command(cursor: Cursor, bounds: dict[tuple[str, int], tuple[int, int]], sensor_name: str,
                         recreated: set[str] = frozenset(), topic_ids: TopicIds | None = None,
                         failures_checked_at: float | None = None) -> str:
    """The command that moves the cursor of every moved-back partition to its first offset. The cursor it sets
    keeps the other topics' ids (`topic_ids`), so a topic recreated while the first is dealt with is still
    caught, and when the sensor last looked for failed micro-batches; the reset topics take their ids as Kafka
    has them at the next tick."""
    back = moved_back(cursor, bounds, recreated)
    topics = {topic for topic, _ in back}
    # A partition the new topic lacks starts from nothing if it comes back, not from the old topic's offset.
    reset = {key: offset for key, offset in cursor.items()
             if partition_of(key)[0] not in topics or partition_of(key) in bounds}
    for topic, partition in back:
        reset[cursor_key(topic, partition)] = bounds[(topic, partition)][0]
    kept = {topic: topic_id for topic, topic_id in (topic_ids or {}).items() if topic not in topics}
    return f"dagster sensor cursor {sensor_name} -w workspace.yaml --set '{cursor_text(reset, kept, failures_checked_at)}'"


def run_key(batch: list[OffsetRange], topic_ids: TopicIds | None = None) -> str:
    """The same ranges of the same topics always give the same key, so a re-planned batch is never launched
    twice; with `topic_ids`, the same offsets of a topic recreated since get another key (Dagster would
    skip a run whose key it has seen, in silence)."""
    ids = topic_ids or {}
    text = ",".join(f"{r.topic}:{r.partition}:{r.start}-{r.end}" + (f"@{ids[r.topic]}" if r.topic in ids else "")
                    for r in sorted(batch))
    return "microbatch-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def run_config(batch: list[OffsetRange], heal_gaps: bool = False) -> dict:
    """Run config naming the exact ranges (never the payloads); `heal_gaps` also ingests the gaps below them."""
    ranges = [{"topic": r.topic, "partition": r.partition, "start": r.start, "end": r.end} for r in sorted(batch)]
    config = {"ranges": ranges, **({"heal_gaps": True} if heal_gaps else {})}
    return {"ops": {INGEST_STEP: {"config": config}}}


def parse_cursor(text: str | None) -> Cursor:
    """The offsets of a sensor cursor: `{"offsets": {...}, "topic_ids": {...}}`, or the offsets alone (as
    versions before topic ids wrote them, or as set by hand: the next tick that plans takes Kafka's ids)."""
    data = json.loads(text or "{}")
    return {key: int(value) for key, value in data.get("offsets", data).items()}


def parse_topic_ids(text: str | None) -> TopicIds:
    """The topic ids a sensor cursor was planned against ({} when it has none)."""
    return dict(json.loads(text or "{}").get("topic_ids", {}))


def parse_failures_checked_at(text: str | None) -> float | None:
    """When the sensor last looked for micro-batches that failed for good (None if its cursor does not say)."""
    return json.loads(text or "{}").get("failures_checked_at")


def cursor_text(cursor: Cursor, topic_ids: TopicIds, failures_checked_at: float | None = None) -> str:
    checked = {"failures_checked_at": round(failures_checked_at, 3)} if failures_checked_at is not None else {}
    return json.dumps({"offsets": cursor, "topic_ids": topic_ids, **checked}, sort_keys=True)
