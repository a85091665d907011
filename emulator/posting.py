"""The user posting emulation (docs/architecture.md section 3): source rows become pin, geo and user events.

Rows are read from the source database in bulk and serialised once; a post is then three sends
(pin, geo, user) with the row key as the message key, so the events of one post stay in order.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from kafka.partitioner.default import murmur2

from emulator.source_db import SOURCE_TABLES, read_rows

KINDS = tuple(SOURCE_TABLES)


def _json_default(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} in an event")


def encode_row(row: dict) -> bytes:
    """An event value: exactly the source row as one JSON object, datetimes as ISO-8601."""
    return json.dumps(row, default=_json_default, separators=(",", ":")).encode()


@dataclass
class SourcePosts:
    """Every post of the source database, pre-serialised: keys[i] owns payloads[kind][i]."""

    keys: list[bytes]
    payloads: dict[str, list[bytes]]

    def __len__(self) -> int:
        return len(self.keys)


def load_posts(engine) -> SourcePosts:
    """Read the three tables in bulk and keep the keys present in all of them."""
    by_kind = {}
    for kind in KINDS:
        key = SOURCE_TABLES[kind][1]
        by_kind[kind] = {row[key]: encode_row(row) for row in read_rows(engine, kind)}
    keys = sorted(set(by_kind["pin"]).intersection(by_kind["geo"], by_kind["user"]))
    return SourcePosts(
        keys=[str(k).encode() for k in keys],
        payloads={kind: [by_kind[kind][k] for k in keys] for kind in KINDS},
    )


def choose_posts(count: int, replay: bool, posts: int | None, rng: random.Random) -> Iterator[int]:
    """Post positions to send: the table in order (replay) or random rows (with repeats), endless if no limit."""
    if replay:
        yield from range(count if posts is None else min(posts, count))
        return
    sent = 0
    while posts is None or sent < posts:
        yield rng.randrange(count)
        sent += 1


@dataclass
class PostingStats:
    posts: int = 0
    sent: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    errors: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(self.sent.values())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def record_failure(self, kind: str, exc: BaseException) -> None:
        self.failed[kind] += 1
        if len(self.errors) < 5:
            self.errors.append(f"{kind}: {exc!r}")


def default_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` among `partitions` (murmur2, as the Java client)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class KafkaSink:
    """Sends events to `<prefix>.<kind>`; counts failed deliveries reported by the producer.

    The partition of a key is computed once, as Kafka's default partitioner does (murmur2 of the
    key), and cached: source rows repeat, and hashing in pure Python is a fifth of the send cost.
    """

    def __init__(self, producer, topics: dict[str, str], stats: PostingStats):
        self.producer, self.topics, self.stats = producer, topics, stats
        self._errbacks = {kind: (lambda exc, kind=kind: stats.record_failure(kind, exc)) for kind in topics}
        self._partition_counts = {kind: len(producer.partitions_for(topic)) for kind, topic in topics.items()}
        self._partitions: dict[tuple[str, bytes], int] = {}

    def partition(self, kind: str, key: bytes) -> int:
        partition = self._partitions.get((kind, key))
        if partition is None:
            partition = default_partition(key, self._partition_counts[kind])
            self._partitions[(kind, key)] = partition
        return partition

    def send(self, kind: str, key: bytes, value: bytes) -> None:
        future = self.producer.send(self.topics[kind], key=key, value=value, partition=self.partition(kind, key))
        future.add_errback(self._errbacks[kind])

    def close(self, timeout_s: float = 60.0) -> None:
        self.producer.flush(timeout=timeout_s)
        self.producer.close(timeout=timeout_s)


class ConsoleSink:
    """Prints each event instead of sending it, as the original emulator did."""

    def __init__(self, topics: dict[str, str], out=None):
        self.topics, self.out = topics, out or sys.stdout

    def send(self, kind: str, key: bytes, value: bytes) -> None:
        self.out.write(f"{self.topics[kind]} key={key.decode()} {value.decode()}\n")

    def close(self, timeout_s: float = 0) -> None:
        self.out.flush()


def post_events(
    source: SourcePosts,
    sink,
    stats: PostingStats,
    *,
    posts: int | None = None,
    duration_s: float | None = None,
    rate: float = 0,
    replay: bool = False,
    seed: int | None = None,
    progress_every_s: float = 2.0,
    progress=None,
) -> PostingStats:
    """Send posts (pin, geo, user events of one key) at `rate` posts/s (0 = as fast as possible)."""
    rng = random.Random(seed)
    deadline = None if duration_s is None else stats.started + duration_s
    next_report = stats.started + progress_every_s
    sent = stats.sent
    for position in choose_posts(len(source), replay, posts, rng):
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        if rate > 0:
            due = stats.started + stats.posts / rate
            if due > now:
                time.sleep(due - now)
        key = source.keys[position]
        for kind in KINDS:
            sink.send(kind, key, source.payloads[kind][position])
            sent[kind] += 1
        stats.posts += 1
        if progress is not None and now >= next_report:
            progress(stats)
            next_report = now + progress_every_s
    return stats
