"""Offset ranges, and what the lake holds of each Kafka partition measured against Kafka's own offsets.

Kafka retains offsets `[first, end)` of a partition; the ingestion log records the ranges written to
raw and rejects. From the two, for every (topic, partition) (docs/architecture.md section 5):

- gaps: offsets from `first` up to the highest ingested one that no logged range covers (a micro-batch
  that failed for good, a cursor that moved past them). The pipeline ingests them again by itself.
- lost: offsets below `first` that were never ingested: Kafka's retention deleted them first. They
  cannot be read any more; the completeness check names them.
- tail: offsets after the highest ingested one, not yet ingested. Gaps plus tail are the lag.
- moved back: Kafka's end lies below the highest ingested offset, so the topic was deleted and
  recreated; nothing of it is planned until its cursor is reset.

Pure functions, no Spark or Kafka client: the sensor, the ingestion step and the checks share them.
"""

from __future__ import annotations

from dataclasses import dataclass

Interval = tuple[int, int]  # [start, end)


@dataclass(frozen=True, order=True)
class OffsetRange:
    """Offsets `start` (inclusive) to `end` (exclusive) of one topic partition."""

    topic: str
    partition: int
    start: int
    end: int

    def __post_init__(self):
        if not 0 <= self.start <= self.end:
            raise ValueError(f"invalid offset range {self}: need 0 <= start <= end")

    @property
    def size(self) -> int:
        return self.end - self.start

    def predicate(self) -> str:
        return (
            f"(_topic = '{self.topic}' AND _partition = {self.partition} "
            f"AND _offset >= {self.start} AND _offset < {self.end})"
        )

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}] {self.start}-{self.end}"


def union(intervals) -> list[Interval]:
    """The union of `[start, end)` intervals, as sorted disjoint intervals (touching ones joined)."""
    merged: list[list[int]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def missing(covered, start: int, end: int) -> list[Interval]:
    """The parts of `[start, end)` that no interval of `covered` covers."""
    holes, at = [], start
    for c_start, c_end in union(covered):
        if c_end <= at:
            continue
        if c_start >= end:
            break
        if c_start > at:
            holes.append((at, c_start))
        at = max(at, c_end)
    if at < end:
        holes.append((at, end))
    return holes


def size(intervals) -> int:
    return sum(end - start for start, end in intervals)


def intersection(a, b) -> list[Interval]:
    """The offsets both unions of intervals hold, as sorted disjoint intervals."""
    both = [(max(s1, s2), min(e1, e2)) for s1, e1 in union(a) for s2, e2 in union(b)]
    return union(i for i in both if i[0] < i[1])


def since_last_check(window: list[Interval], checked_up_to: int | None, rewritten: list[Interval]) -> list[Interval]:
    """The part of a partition's `window` a check reads when it reads only what arrived since it last passed:
    all of it if it never passed (`checked_up_to` None); else the offsets from `checked_up_to` (where the
    window ended then) on, and the ranges ingested again since (their slices of raw and rejects were
    replaced). The rest of the lake is as the passing check saw it: every write replaces the slice of a
    range the ingestion log records (docs/architecture.md section 5)."""
    if checked_up_to is None:
        return union(window)
    until = max((end for _, end in window), default=checked_up_to)
    return intersection(window, [(checked_up_to, max(checked_up_to, until)), *rewritten])


@dataclass(frozen=True)
class PartitionCoverage:
    """One partition: Kafka's retained offsets `[first, end)` and the union of the ranges ingested."""

    topic: str
    partition: int
    first: int
    end: int
    ingested: tuple[Interval, ...] = ()

    @property
    def until(self) -> int:
        """The offset after the highest one ingested (0 when nothing was)."""
        return self.ingested[-1][1] if self.ingested else 0

    @property
    def moved_back(self) -> bool:
        return self.end < self.until

    @property
    def gaps(self) -> list[Interval]:
        return [] if self.moved_back else missing(self.ingested, self.first, self.until)

    @property
    def lost(self) -> list[Interval]:
        return [] if self.moved_back else missing(self.ingested, 0, self.first)

    @property
    def tail(self) -> Interval | None:
        start = max(self.until, self.first)
        return None if self.moved_back or self.end <= start else (start, self.end)

    def intervals_of(self, ranges) -> list[Interval]:
        """The intervals of those `ranges` that lie in this partition."""
        return [(r.start, r.end) for r in ranges if (r.topic, r.partition) == (self.topic, self.partition)]

    def window(self, owned: list[OffsetRange] = ()) -> list[Interval]:
        """The offsets that must be in the lake now: from `first` up to the highest ingested, except what
        `owned` ranges (runs queued or running) will write."""
        return [] if self.moved_back else missing(self.intervals_of(owned), self.first, self.until)

    @property
    def lag(self) -> int:
        """Retained offsets not in the lake: the gaps and the tail."""
        return size(self.gaps) + (size([self.tail]) if self.tail else 0)


def coverage_of(logged: dict[tuple[str, int], list[Interval]], bounds: dict[tuple[str, int], Interval]) -> list[PartitionCoverage]:
    """Coverage of every partition Kafka has, from logged ranges and Kafka's (first, end) offsets."""
    return [
        PartitionCoverage(topic, partition, first, end, tuple(union(logged.get((topic, partition), []))))
        for (topic, partition), (first, end) in sorted(bounds.items())
    ]


def ranges_to_ingest(
    coverage: list[PartitionCoverage],
    owned: list[OffsetRange] = (),
    up_to: dict[tuple[str, int], int] | None = None,
    max_records_per_partition: int | None = None,
) -> list[OffsetRange]:
    """The retained offsets that nobody has ingested or is ingesting, per partition.

    `owned` are ranges that runs in flight will write: they are left to them. Without `up_to` the
    result is the gaps only (below what was ingested); with it, everything up to `up_to[(topic,
    partition)]` (Kafka's end for a catch-up, or the streaming sensor's cursor when streaming owns
    what lies beyond), at most `max_records_per_partition` offsets per partition.
    """
    ranges = []
    for c in coverage:
        if c.moved_back:
            continue
        stop = c.until if up_to is None else min(c.end, max(up_to.get((c.topic, c.partition), c.end), c.until))
        budget = max_records_per_partition
        for start, end in missing([*c.ingested, *c.intervals_of(owned)], c.first, stop):
            if budget is not None:
                end = min(end, start + budget)
                budget -= end - start
            if end > start:
                ranges.append(OffsetRange(c.topic, c.partition, start, end))
            if budget == 0:
                break
    return ranges


def retained_parts(ranges, firsts: dict[tuple[str, int], int]) -> tuple[list[OffsetRange], list[OffsetRange]]:
    """`ranges` split at each partition's first retained offset (`firsts`): the parts Kafka still holds, and
    the parts retention (or a deletion of records) took before they were read."""
    kept, deleted = [], []
    for r in ranges:
        first = firsts.get((r.topic, r.partition), 0)
        if r.start < first:
            deleted.append(OffsetRange(r.topic, r.partition, r.start, min(r.end, first)))
        if r.end > max(r.start, first):
            kept.append(OffsetRange(r.topic, r.partition, max(r.start, first), r.end))
    return kept, deleted


def ranges_text(ranges, limit: int = 20) -> str:
    """`topic[p] start-end, ...` for logs, tags and metadata; at most `limit` ranges, then how many more."""
    ranges = sorted(ranges)
    text = ", ".join(str(r) for r in ranges[:limit])
    return text + (f" and {len(ranges) - limit} more" if len(ranges) > limit else "") if ranges else "none"


def lag_per_topic(ends: dict[tuple[str, int], int], positions: dict[tuple[str, int], int],
                  ingested: list[OffsetRange] = (), owned: list[OffsetRange] = ()) -> dict[str, int]:
    """Events of each topic not in the lake yet: from each partition's position (the next offset nobody
    has taken: the streaming cursor, or the end of what the log holds) or the end of the `ingested` ranges,
    whichever is further, up to Kafka's end; plus what `owned` ranges (runs in flight) will write. Gaps
    below the position are the completeness check's business."""
    reached = dict(positions)
    for r in ingested:
        reached[(r.topic, r.partition)] = max(reached.get((r.topic, r.partition), 0), r.end)
    lag: dict[str, int] = {}
    for (topic, partition), end in ends.items():
        lag[topic] = lag.get(topic, 0) + max(0, end - reached.get((topic, partition), 0))
    for r in owned:
        lag[r.topic] = lag.get(r.topic, 0) + r.size
    return lag
