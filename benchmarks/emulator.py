"""Emulator vs a bare kafka-python producer loop: events/s to Kafka for the same payloads.

The emulator (`python -m emulator post --posts N --rate 0 --seed S`) runs as the user runs it; the
bare loop sends the same (topic, key, value) sequence - the same rows chosen by the same seed,
serialised by the same code - with a producer of the same settings (`make_producer`), leaving the
partition to kafka-python's default partitioner. Both go to fresh topics; the same result is the same
number of messages in every partition. Both rates exclude start-up and reading the source database:
the emulator's own report times from its first send to the end of its flush, as the loop is timed.
"""

from __future__ import annotations

import random
import re
import statistics
import subprocess
import sys
import time

from benchmarks.common import Comparison, fresh_workspace, progress, require_same
from emulator import source_db
from emulator.posting import KINDS, choose_posts, load_posts
from pinterest_dagster.lib.kafka import end_offsets, make_producer
from pinterest_dagster.settings import REPO_ROOT, Settings

SEED = 7
TARGET = 0.8
EMULATOR_REPORT = re.compile(r"posted ([\d,]+) posts: ([\d,]+) events delivered .*, 0 failed, in [\d.]+ s \(([\d,]+) events/s\)")


def emulator_rate(env: dict, posts: int) -> float:
    """Events/s the emulator reports for its own run (it fails loudly on any failed delivery)."""
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "post", "--quiet", "--posts", str(posts), "--rate", "0", "--seed", str(SEED)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True,
    )
    match = EMULATOR_REPORT.search(done.stderr)
    if not match:
        raise RuntimeError(f"no delivery report from the emulator:\n{done.stderr[-2000:]}")
    return float(match.group(3).replace(",", ""))


def emulator_messages(settings: Settings, posts: int) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value) of every event the emulator sends with this seed, in its order."""
    source = load_posts(source_db.connect(settings.source_db_url))
    return [
        (settings.topic(kind), source.keys[position], source.payloads[kind][position])
        for position in choose_posts(len(source), False, posts, random.Random(SEED))
        for kind in KINDS
    ]


def bare_producer_rate(settings: Settings, messages: list[tuple[str, bytes, bytes]]) -> float:
    producer = make_producer(settings)
    producer.partitions_for(messages[0][0])  # metadata fetched before timing, as the emulator's sink does
    started = time.perf_counter()
    for topic, key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return len(messages) / elapsed


def messages_per_partition(settings: Settings) -> dict[tuple[str, int], int]:
    """Messages in each partition, named by kind so two workspaces compare."""
    kinds = {settings.topic(kind): kind for kind in KINDS}
    return {(kinds[tp.topic], tp.partition): end for tp, end in end_offsets(settings, list(kinds)).items()}


def run(posts: int, repeats: int) -> list[Comparison]:
    emulator_rates, bare_rates = [], []
    for attempt in range(1, repeats + 1):
        # Alternating the two sides spreads any drift of a busy machine over both.
        emulator_settings, env = fresh_workspace()
        progress(f"emulator: {posts:,} posts ({3 * posts:,} events), attempt {attempt}/{repeats}")
        emulator_rates.append(emulator_rate(env, posts))
        bare_settings, _ = fresh_workspace()
        messages = emulator_messages(bare_settings, posts)
        progress(f"bare producer: {len(messages):,} events, attempt {attempt}/{repeats}")
        bare_rates.append(bare_producer_rate(bare_settings, messages))
        require_same("messages per partition (emulator, bare producer)",
                     messages_per_partition(emulator_settings), messages_per_partition(bare_settings))
        progress(f"  emulator {emulator_rates[-1]:,.0f} events/s, bare producer {bare_rates[-1]:,.0f} events/s")
    emulator, bare = statistics.median(emulator_rates), statistics.median(bare_rates)
    return [Comparison(
        name="emulator",
        question="emulator vs bare kafka-python producer loop (events/s to Kafka)",
        figures={"emulator_events_per_s": emulator, "bare_producer_events_per_s": bare,
                 "emulator_runs": emulator_rates, "bare_producer_runs": bare_rates},
        ratio=emulator / bare, target=TARGET, target_text="emulator ≥ 80% of the bare producer", unit="events/s",
        parameters={"posts": posts, "events": 3 * posts, "repeats": repeats, "seed": SEED},
        checked="same messages in every partition of the three topics",
    )]
