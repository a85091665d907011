"""The posting emulator against the real local Kafka broker, and its console sink."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import datetime

import pytest
from kafka import KafkaConsumer, TopicPartition

from benchmarks import load
from emulator import source_db
from emulator.cli import main as emulator_main
from pinterest_dagster.lib.kafka import client_config, ensure_topics
from pinterest_dagster_tests.services import isolated_settings, require_kafka

ROWS = 400


@pytest.fixture(scope="module")
def source_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('source') / 'source.db'}"
    assert emulator_main(["seed", "--rows", str(ROWS), "--seed", "5", "--db-url", url]) == 0
    return url


@pytest.fixture(scope="module")
def source_rows(source_url):
    engine = source_db.connect(source_url)
    return {
        kind: {row[key]: row for row in source_db.read_rows(engine, kind)}
        for kind, (_, key) in source_db.SOURCE_TABLES.items()
    }


@pytest.fixture
def settings(monkeypatch):
    settings = isolated_settings()
    require_kafka(settings)
    monkeypatch.setenv("PINTEREST_TOPIC_PREFIX", settings.topic_prefix)
    return settings


def consume_all(settings, expected_per_topic: int, timeout_s: float = 30.0) -> dict[str, list]:
    """Every message of the three topics, read from the beginning of each partition."""
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False)
    topics = list(settings.topics.values())
    partitions = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    messages = defaultdict(list)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(len(messages[t]) < expected_per_topic for t in topics):
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                messages[record.topic].append(record)
    consumer.close()
    return messages


def as_event(row: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def test_posted_events_equal_their_source_rows_and_share_a_key(settings, source_url, source_rows):
    posts = 500  # more than ROWS: random choice repeats rows, as the contract expects
    assert emulator_main(["post", "--posts", str(posts), "--rate", "0", "--seed", "1", "--db-url", source_url]) == 0

    messages = consume_all(settings, posts)
    keys_by_topic = {}
    for kind, topic in settings.topics.items():
        records = messages[topic]
        assert len(records) == posts, f"{topic} has {len(records)} events, expected {posts}"
        key_column = source_db.SOURCE_TABLES[kind][1]
        for record in records:
            event = json.loads(record.value)
            assert record.key == str(event[key_column]).encode()
            assert event == as_event(source_rows[kind][event[key_column]])
        keys_by_topic[kind] = sorted(record.key for record in records)
    assert keys_by_topic["pin"] == keys_by_topic["geo"] == keys_by_topic["user"]
    assert len(set(keys_by_topic["pin"])) < posts, "random choice should repeat some rows"


def test_events_of_one_key_land_in_the_same_partition_number(settings, source_url):
    assert emulator_main(["post", "--posts", "200", "--rate", "0", "--db-url", source_url]) == 0
    partitions = defaultdict(set)
    for records in consume_all(settings, 200).values():
        for record in records:
            partitions[record.key].add(record.partition)
    assert partitions and all(len(p) == 1 for p in partitions.values())


def test_replay_sends_every_row_once_in_key_order(settings, source_url):
    assert emulator_main(["post", "--replay", "--rate", "0", "--db-url", source_url]) == 0
    messages = consume_all(settings, ROWS)
    pins = sorted(json.loads(r.value)["index"] for r in messages[settings.topic("pin")])
    assert pins == list(range(ROWS))
    by_partition = defaultdict(list)
    for record in messages[settings.topic("geo")]:
        by_partition[record.partition].append(json.loads(record.value)["ind"])
    assert all(inds == sorted(inds) for inds in by_partition.values())


def in_partitions(settings, messages) -> dict[tuple[str, int], list[tuple[bytes, bytes]]]:
    """(kind, partition) -> the (key, value) of its messages in offset order."""
    found = defaultdict(list)
    for kind, topic in settings.topics.items():
        for record in sorted(messages[topic], key=lambda r: (r.partition, r.offset)):
            found[(kind, record.partition)].append((record.key, record.value))
    return dict(found)


def test_the_soaks_librdkafka_poster_sends_what_the_emulator_sends(settings, source_url):
    """benchmarks/load.py posts the soak's load with a quarter of the emulator's CPU: the same events, in the same
    partitions and the same order, for the same seed."""
    posts = 300
    assert emulator_main(["post", "--posts", str(posts), "--rate", "0", "--seed", "3", "--db-url", source_url, "--quiet"]) == 0
    lean = isolated_settings(source_db_url=source_url)
    ensure_topics(lean)
    delivered, _, _ = load.post(lean, rate=0, posts=posts, seed=3)

    assert delivered == 3 * posts
    emulated = in_partitions(settings, consume_all(settings, posts))
    assert sum(len(m) for m in emulated.values()) == 3 * posts
    assert all(len({p for k, p in emulated if k == kind}) > 1 for kind in settings.topics)  # keys spread over partitions
    assert in_partitions(lean, consume_all(lean, posts)) == emulated


def test_the_soaks_poster_keeps_its_rate_and_its_duration(settings, source_url):
    lean = isolated_settings(source_db_url=source_url)  # `settings` has checked that Kafka is up
    ensure_topics(lean)
    started = time.monotonic()
    assert load.post(lean, rate=20, posts=30)[0] == 90
    assert time.monotonic() - started >= 30 / 20 - 0.1
    delivered, seconds, _ = load.post(lean, rate=50, duration_s=1)
    assert 0 < delivered <= 3 * 55 and seconds < 10


def test_rate_limit_spaces_the_posts(settings, source_url):
    started = time.monotonic()
    assert emulator_main(["post", "--posts", "30", "--rate", "20", "--db-url", source_url, "--quiet"]) == 0
    assert time.monotonic() - started >= 30 / 20 - 0.1


def test_duration_bounds_the_run(settings, source_url, capsys):
    assert emulator_main(["post", "--duration", "1", "--rate", "50", "--db-url", source_url, "--quiet"]) == 0
    summary = capsys.readouterr().err
    posted = int(summary.split("posted ")[1].split(" posts")[0].replace(",", ""))
    assert 0 < posted <= 55


def test_console_sink_prints_the_three_rows_of_a_post(source_url, source_rows, capsys):
    assert emulator_main(["post", "--sink", "console", "--posts", "1", "--seed", "9", "--db-url", source_url]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    events = [json.loads(line.split(" ", 2)[2]) for line in lines]
    assert [line.split(" ")[0].rsplit(".", 1)[1] for line in lines] == ["pin", "geo", "user"]
    key = events[0]["index"]
    assert events[1]["ind"] == events[2]["ind"] == key
    assert events == [as_event(source_rows[kind][key]) for kind in ("pin", "geo", "user")]


# Keys above 2^31 (`seed --first-id`) go through posting unchanged: JSON integers and string message keys.
FIRST_ID = 3_000_000_000
BIG_ROWS = 60


@pytest.fixture(scope="module")
def big_key_source_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('big-keys') / 'source.db'}"
    args = ["seed", "--rows", str(BIG_ROWS), "--seed", "5", "--first-id", str(FIRST_ID), "--db-url", url]
    assert emulator_main(args) == 0
    return url


def big_key_rows(url: str) -> dict[str, dict]:
    engine = source_db.connect(url)
    return {
        kind: {row[key]: row for row in source_db.read_rows(engine, kind)}
        for kind, (_, key) in source_db.SOURCE_TABLES.items()
    }


def test_console_sink_carries_keys_above_2_31_unchanged(big_key_source_url, capsys):
    source = big_key_rows(big_key_source_url)
    assert emulator_main(["post", "--sink", "console", "--replay", "--rate", "0", "--db-url", big_key_source_url, "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 * BIG_ROWS
    expected_keys = list(range(FIRST_ID, FIRST_ID + BIG_ROWS))
    for kind, offset in (("pin", 0), ("geo", 1), ("user", 2)):
        key_column = source_db.SOURCE_TABLES[kind][1]
        keys = []
        for line in lines[offset::3]:
            topic, key_text, value = line.split(" ", 2)
            assert topic.rsplit(".", 1)[1] == kind
            event = json.loads(value)
            assert type(event[key_column]) is int and key_text == f"key={event[key_column]}"
            assert f'"{key_column}":{event[key_column]},' in value  # a JSON integer, not a string or a float
            assert event == as_event(source[kind][event[key_column]])
            keys.append(event[key_column])
        assert keys == expected_keys


def test_kafka_carries_keys_above_2_31_unchanged(settings, big_key_source_url):
    source = big_key_rows(big_key_source_url)
    assert emulator_main(["post", "--replay", "--rate", "0", "--db-url", big_key_source_url, "--quiet"]) == 0
    messages = consume_all(settings, BIG_ROWS)
    for kind, topic in settings.topics.items():
        key_column = source_db.SOURCE_TABLES[kind][1]
        records = messages[topic]
        assert len(records) == BIG_ROWS, f"{topic} has {len(records)} events, expected {BIG_ROWS}"
        for record in records:
            event = json.loads(record.value)
            assert type(event[key_column]) is int and event[key_column] > 2**31
            assert record.key == str(event[key_column]).encode()
            assert event == as_event(source[kind][event[key_column]])
        assert sorted(int(record.key) for record in records) == list(range(FIRST_ID, FIRST_ID + BIG_ROWS))
