"""Planning streaming micro-batches: from a cursor of next offsets to bounded, exact offset ranges."""

from __future__ import annotations

import hashlib
import json
import math

from pinterest_dagster.lib.offsets import OffsetRange

# The step that ingests a run's ranges (defs/ingest/assets.py): the run config names it, the merge step looks for it.
INGEST_STEP = "ingest_kafka_events"

Cursor = dict[str, int]  # "topic:partition" -> next offset to ingest


def cursor_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


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


def moved_back(cursor: Cursor, bounds: dict[tuple[str, int], tuple[int, int]]) -> dict[tuple[str, int], tuple[int, int]]:
    """Partitions whose end offset lies behind the cursor, (cursor, end) each: the topic was deleted and
    recreated, and planning from the cursor would wait for ever for offsets already used once."""
    return {
        (topic, partition): (cursor[cursor_key(topic, partition)], end)
        for (topic, partition), (_, end) in sorted(bounds.items())
        if cursor.get(cursor_key(topic, partition), 0) > end
    }


def deleted_before_ingestion(cursor: Cursor, bounds: dict[tuple[str, int], tuple[int, int]]) -> list[OffsetRange]:
    """Offsets between the cursor and the first one Kafka still retains: retention deleted them before any
    micro-batch read them (the run that ingests the partition next reports them as lost)."""
    return [
        OffsetRange(topic, partition, cursor[cursor_key(topic, partition)], first)
        for (topic, partition), (first, end) in sorted(bounds.items())
        if cursor.get(cursor_key(topic, partition), first) < first <= end
    ]


def cursor_reset_command(cursor: Cursor, bounds: dict[tuple[str, int], tuple[int, int]], sensor_name: str) -> str:
    """The command that moves the cursor of every moved-back partition to its first offset."""
    reset = dict(cursor)
    for topic, partition in moved_back(cursor, bounds):
        reset[cursor_key(topic, partition)] = bounds[(topic, partition)][0]
    return f"dagster sensor cursor {sensor_name} -w workspace.yaml --set '{json.dumps(reset, sort_keys=True)}'"


def run_key(batch: list[OffsetRange]) -> str:
    """The same ranges always give the same key, so a re-planned batch is never launched twice."""
    text = ",".join(f"{r.topic}:{r.partition}:{r.start}-{r.end}" for r in sorted(batch))
    return "microbatch-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def run_config(batch: list[OffsetRange], heal_gaps: bool = False) -> dict:
    """Run config naming the exact ranges (never the payloads); `heal_gaps` also ingests the gaps below them."""
    ranges = [{"topic": r.topic, "partition": r.partition, "start": r.start, "end": r.end} for r in sorted(batch)]
    config = {"ranges": ranges, **({"heal_gaps": True} if heal_gaps else {})}
    return {"ops": {INGEST_STEP: {"config": config}}}


def parse_cursor(text: str | None) -> Cursor:
    return {key: int(value) for key, value in json.loads(text or "{}").items()}
